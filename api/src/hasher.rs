//! Argon2id off the async threads, on a fixed set of hashing threads (one per CPU core by
//! default): more would only add memory and queueing, not throughput, and fixed threads keep
//! each one's Argon2 working memory warm between hashes.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use gatehouse_domain::password::{
    Argon2Settings, BoxFuture, HashError, PasswordHash, PasswordHasher,
};
use secrecy::SecretString;
use tokio::sync::oneshot;

use crate::keys::random_bytes;

type Job = Box<dyn FnOnce() + Send>;

/// The production hasher.
pub struct Argon2Hasher {
    settings: Argon2Settings,
    jobs: mpsc::Sender<Job>,
    /// Verified against when the identifier is unknown, so that case costs a real verification.
    dummy: PasswordHash,
}

impl Argon2Hasher {
    /// A hasher at `settings` running up to `concurrency` hashes at once.
    pub fn new(settings: Argon2Settings, concurrency: usize) -> Result<Self, HashError> {
        let salt = random_bytes::<16>().map_err(|e| HashError(e.to_string()))?;
        let filler = hex::encode(random_bytes::<16>().map_err(|e| HashError(e.to_string()))?);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..concurrency.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job, not while hashing.
                    let job = match receiver.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A panicking job must not take its thread with it.
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(_) => return,
                    }
                })
                .map_err(|e| HashError(format!("cannot start a hashing thread: {e}")))?;
        }
        // The dummy is hashed on a hashing thread: each thread keeps its Argon2 working memory
        // (19 MiB at the default settings), so hashing it on the caller's thread would pin one
        // more working area to a thread that never hashes again.
        let (done, dummy) = mpsc::channel();
        sender
            .send(Box::new(move || {
                let _ = done.send(settings.hash_blocking(&SecretString::from(filler), &salt));
            }))
            .map_err(|_| HashError("hashing threads stopped".into()))?;
        let dummy = dummy
            .recv()
            .map_err(|_| HashError("hashing task failed".into()))??;
        Ok(Self {
            settings,
            jobs: sender,
            dummy,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The request gave up while queued (client gone, timeout): spend no hash on it.
            if done.is_closed() {
                return;
            }
            let _ = done.send(work());
        });
        self.jobs
            .send(job)
            .map_err(|_| HashError("hashing threads stopped".into()))?;
        result
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

#[cfg(test)]
mod tests {
    use gatehouse_domain::password::kept_working_memory_bytes;

    use super::*;

    fn cheap() -> Argon2Settings {
        Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn test_the_dummy_is_hashed_on_a_hashing_thread_not_the_callers() {
        let hasher = Argon2Hasher::new(cheap(), 1).expect("hasher");
        // Only the hashing thread keeps Argon2 memory; the thread that built the hasher has none.
        assert_eq!(kept_working_memory_bytes(), 0);
        // An unknown identifier still costs a real verification and never matches.
        let password = SecretString::from("correct horse battery staple");
        assert!(!hasher.verify(&password, None).await);
        let hash = hasher.hash(&password).await.expect("hash");
        assert!(hasher.verify(&password, Some(&hash)).await);
        assert_eq!(kept_working_memory_bytes(), 0);
    }
}
