//! Team accounts end to end (issue #7): invitations by verified email accepted by the invitee,
//! role checks on every route, the last admin kept, and the permission answer for the platform.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::admin_api::{bootstrap_admin, create_staff};
use super::e2e_recovery::{world, World};
use super::e2e_second_factor::send;
use super::support::{assert_error_shape, PASSWORD};

async fn get(server: &super::support::Server, path: &str, token: &str) -> (u16, Value) {
    server.authed(Method::GET, path, token).await
}

/// Alice's team `name` (Alice its admin), and Bob and Carol with verified emails, all signed in.
struct Desk {
    alice_id: String,
    bob_id: String,
    alice: String,
    bob: String,
    carol: String,
    /// `/v1/teams/{team_id}`.
    base: String,
}

async fn desk(w: &World, name: &str) -> Desk {
    let alice_id = w.verified_email_account("alice@example.com").await;
    let bob_id = w.verified_email_account("bob@example.com").await;
    w.verified_email_account("carol@example.com").await;
    let alice = w.server.token("alice@example.com", PASSWORD).await;
    let (status, team) = send(
        &w.server,
        Method::POST,
        "/v1/teams",
        &alice,
        json!({"name": name}),
    )
    .await;
    assert_eq!(status, 201, "{team}");
    Desk {
        alice_id,
        bob_id,
        alice,
        bob: w.server.token("bob@example.com", PASSWORD).await,
        carol: w.server.token("carol@example.com", PASSWORD).await,
        base: format!("/v1/teams/{}", team["team_id"].as_str().unwrap()),
    }
}

/// The admin steps up with the password and invites `email` as `role`; the invitation's id.
async fn invite(w: &World, admin: &str, base: &str, email: &str, role: &str) -> String {
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        admin,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, invitation) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        admin,
        json!({"email": email, "role": role}),
    )
    .await;
    assert_eq!(status, 201, "{invitation}");
    invitation["invitation_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn test_team_invitations_roles_last_admin_and_permissions() {
    let w = world(&[("GATEHOUSE_TEAM_INVITATION_SECONDS", "3")]).await;
    let admin = bootstrap_admin(&w.db).await;
    let platform = create_staff(&w.server, &admin, "exchange backend", "platform").await;
    let analyst = create_staff(&w.server, &admin, "ana", "analyst").await;
    let Desk {
        alice_id,
        bob_id,
        alice,
        bob,
        carol,
        base,
        ..
    } = desk(&w, "Desk 7").await;

    // Inviting needs a stepped-up session (issue #17); without a factor the password steps up.
    let invite_bob = json!({"email": "Bob@Example.com", "role": "trader"});
    let (status, body) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        &alice,
        invite_bob,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "step_up_required", "{body}");

    // Alice invites Bob's email as a trader; only Bob's account (email verified) can accept.
    let invitation_id = invite(&w, &alice, &base, "Bob@Example.com", "trader").await;
    let (_, mine) = get(&w.server, "/v1/me/team-invitations", &bob).await;
    assert_eq!(
        mine["invitations"][0]["invitation_id"],
        json!(invitation_id),
        "{mine}"
    );
    assert_eq!(mine["invitations"][0]["team_name"], "Desk 7");
    let (_, theirs) = get(&w.server, "/v1/me/team-invitations", &carol).await;
    assert_eq!(theirs["invitations"], json!([]));
    let accept = format!("{base}/invitations/{invitation_id}/accept");
    let (status, body) = send(&w.server, Method::POST, &accept, &carol, json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_error_shape(&body, "invitation_not_found");
    let (status, body) = send(&w.server, Method::POST, &accept, &bob, json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = send(&w.server, Method::POST, &accept, &bob, json!({})).await;
    assert_eq!(status, 404, "an invitation works once");

    // The platform asks what each may do.
    let ask = |who: &str| format!("{base}/permissions/{who}");
    let (status, perms) = get(&w.server, &ask(&bob_id), &platform).await;
    assert_eq!(status, 200, "{perms}");
    assert_eq!(perms["role"], "trader");
    assert_eq!(perms["permissions"], json!(["view", "trade"]));
    let (_, perms) = get(&w.server, &ask(&alice_id), &bob).await;
    assert_eq!(
        perms["permissions"],
        json!(["view", "trade", "withdraw", "manage_members"])
    );
    let (status, _) = get(&w.server, &ask(&bob_id), &carol).await;
    assert_eq!(status, 404, "non-members learn nothing");
    let (status, _) = get(&w.server, &ask(&bob_id), &analyst).await;
    assert_eq!(status, 403);
    let (status, _) = w
        .server
        .post(&format!("{base}/permissions/{bob_id}"), json!({}))
        .await;
    assert_eq!(status, 405);
    let (status, _) = w.get(&ask(&bob_id)).await;
    assert_eq!(status, 401);

    // A trader manages nobody.
    let (status, body) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        &bob,
        json!({"email": "carol@example.com", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        &w.server,
        Method::PUT,
        &format!("{base}/members/{bob_id}"),
        &bob,
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(status, 403);
    let (_, view) = get(&w.server, &base, &bob).await;
    assert_eq!(view["your_role"], "trader");
    assert_eq!(
        view["invitations"],
        json!([]),
        "only admins see invitations"
    );

    // The last admin can be neither demoted nor removed.
    let (status, body) = send(
        &w.server,
        Method::PUT,
        &format!("{base}/members/{alice_id}"),
        &alice,
        json!({"role": "viewer"}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_error_shape(&body, "last_admin");
    let (status, body) = send(
        &w.server,
        Method::DELETE,
        &format!("{base}/members/{alice_id}"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // With Bob promoted, Alice may step down; as a viewer she manages nobody.
    let (status, _) = send(
        &w.server,
        Method::PUT,
        &format!("{base}/members/{bob_id}"),
        &alice,
        json!({"role": "admin"}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = send(
        &w.server,
        Method::PUT,
        &format!("{base}/members/{alice_id}"),
        &alice,
        json!({"role": "viewer"}),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = send(
        &w.server,
        Method::DELETE,
        &format!("{base}/members/{bob_id}"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    // A viewer may look but not trade: the platform refuses her orders.
    let (_, perms) = get(&w.server, &ask(&alice_id), &platform).await;
    assert_eq!(perms["role"], "viewer");
    assert_eq!(perms["permissions"], json!(["view"]));
    let (status, _) = send(
        &w.server,
        Method::DELETE,
        &format!("{base}/members/{alice_id}"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(status, 204);
    let (_, perms) = get(&w.server, &ask(&alice_id), &platform).await;
    assert_eq!(perms["member"], false);
    assert_eq!(perms["permissions"], json!([]));

    // Invitations expire.
    let (status, body) = send(
        &w.server,
        Method::POST,
        "/v1/me/step-up",
        &bob,
        json!({"proof": {"password": PASSWORD}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, invitation) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        &bob,
        json!({"email": "carol@example.com", "role": "viewer"}),
    )
    .await;
    let late = format!(
        "{base}/invitations/{}/accept",
        invitation["invitation_id"].as_str().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (status, _) = send(&w.server, Method::POST, &late, &carol, json!({})).await;
    assert_eq!(status, 404);

    // Malformed input: the documented error shape.
    let (status, body) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        &bob,
        json!({"email": "not-an-email", "role": "viewer"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        &w.server,
        Method::POST,
        &format!("{base}/invitations"),
        &bob,
        json!({"email": "c@example.com", "role": "owner"}),
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let (status, _) = get(&w.server, "/v1/teams/not-a-uuid", &bob).await;
    assert_eq!(status, 400);
    let (status, _) = get(
        &w.server,
        "/v1/teams/00000000-0000-0000-0000-000000000000",
        &bob,
    )
    .await;
    assert_eq!(status, 404);
}

/// The invitee can turn an invitation down; nobody else can close it for them: another account,
/// an unknown team and an unknown invitation all get the same `404 invitation_not_found`, and the
/// invitation stays open until its invitee answers.
#[tokio::test]
async fn test_only_the_invitee_declines_an_invitation() {
    let w = world(&[]).await;
    let Desk {
        alice,
        bob,
        carol,
        base,
        ..
    } = desk(&w, "Desk 9").await;
    let invitation_id = invite(&w, &alice, &base, "carol@example.com", "viewer").await;
    let decline = format!("{base}/invitations/{invitation_id}/decline");

    // Strangers: another account (the inviting admin included), an unknown team, an unknown
    // invitation, no token.
    let unknown_team = format!(
        "/v1/teams/{}/invitations/{invitation_id}/decline",
        uuid::Uuid::new_v4()
    );
    let unknown_invitation = format!("{base}/invitations/{}/decline", uuid::Uuid::new_v4());
    for (path, token) in [
        (&decline, &bob),
        (&decline, &alice),
        (&unknown_team, &carol),
        (&unknown_invitation, &carol),
    ] {
        let (status, body) = send(&w.server, Method::POST, path, token, json!({})).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_error_shape(&body, "invitation_not_found");
    }
    let (status, _) = w.server.post(&decline, json!({})).await;
    assert_eq!(status, 401);
    let (_, mine) = get(&w.server, "/v1/me/team-invitations", &carol).await;
    assert_eq!(
        mine["invitations"][0]["invitation_id"],
        json!(invitation_id),
        "still open after the strangers: {mine}"
    );

    // The invitee declines: the invitation is closed for good.
    let (status, body) = send(&w.server, Method::POST, &decline, &carol, json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (_, mine) = get(&w.server, "/v1/me/team-invitations", &carol).await;
    assert_eq!(mine["invitations"], json!([]), "{mine}");
    let accept = format!("{base}/invitations/{invitation_id}/accept");
    for path in [&accept, &decline] {
        let (status, body) = send(&w.server, Method::POST, path, &carol, json!({})).await;
        assert_eq!(status, 404, "{path} after declining: {body}");
        assert_error_shape(&body, "invitation_not_found");
    }
    let (status, team) = get(&w.server, &base, &alice).await;
    assert_eq!(status, 200, "{team}");
    assert!(
        !team.to_string().contains("carol"),
        "carol did not join: {team}"
    );
}
