-- Open team invitations by the keyed lookup of the invitee's email, so an account can find the
-- invitations addressed to its verified email. The Team aggregate decides; this only points.
create table team_invitations
(
    invitation_id text   primary key,
    team_id       text   not null,
    email_lookup  text   not null,
    expires_ms    bigint not null
);
create index team_invitations_by_lookup on team_invitations (email_lookup);
