//! Argon2id off the async threads, with at most one hash per CPU core at a time (more would only
//! add memory and queueing, not throughput).
use std::sync::Arc;

use gatehouse_domain::password::{
    Argon2Settings, BoxFuture, HashError, PasswordHash, PasswordHasher,
};
use secrecy::SecretString;
use tokio::sync::Semaphore;

use crate::keys::random_bytes;

/// The production hasher.
pub struct Argon2Hasher {
    settings: Argon2Settings,
    permits: Arc<Semaphore>,
    /// Verified against when the identifier is unknown, so that case costs a real verification.
    dummy: PasswordHash,
}

impl Argon2Hasher {
    /// A hasher at `settings` running up to `concurrency` hashes at once.
    pub fn new(settings: Argon2Settings, concurrency: usize) -> Result<Self, HashError> {
        let salt = random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
        let filler = hex::encode(random_bytes::<16>().map_err(|e| HashError(e.to_string()))?);
        let dummy = settings.hash_blocking(&SecretString::from(filler), &salt)?;
        Ok(Self {
            settings,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HashError("hasher closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError("hashing task failed".into()))
    }
}

impl PasswordHasher for Argon2Hasher {
    fn hash<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<PasswordHash, HashError>> {
        Box::pin(async move {
            let salt = random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
            let settings = self.settings;
            let password = password.clone();
            self.run(move || settings.hash_blocking(&password, &salt))
                .await?
        })
    }

    fn verify<'a>(
        &'a self,
        password: &'a SecretString,
        hash: Option<&'a PasswordHash>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let settings = self.settings;
            let password = password.clone();
            let (target, real) = match hash {
                Some(h) => (h.clone(), true),
                None => (self.dummy.clone(), false),
            };
            let matched = self
                .run(move || settings.verify_blocking(&password, &target))
                .await
                .unwrap_or(false);
            matched && real
        })
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        self.settings.needs_rehash(hash)
    }
}
