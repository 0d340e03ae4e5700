//! The private registry logins the relay sent (`registry.logins`), kept in memory only (never
//! on disk, never logged), and the one that goes with an image: matched by the registry the
//! reference names, as Docker does (first path component with a dot or port, else Docker Hub).

use std::sync::RwLock;

use bollard::auth::DockerCredentials;
use zedops_protocol::{DOCKER_HUB, RegistryLogin, registry_of_image, registry_server};

/// The address Docker's own config gives Docker Hub's logins.
const DOCKER_HUB_ADDRESS: &str = "https://index.docker.io/v1/";

/// Every login the relay sent last, replaced as a whole each time.
#[derive(Default)]
pub struct Logins(RwLock<Vec<RegistryLogin>>);

impl Logins {
    /// Replaces the logins; returns how many are held now.
    pub fn replace(&self, logins: Vec<RegistryLogin>) -> usize {
        let logins: Vec<RegistryLogin> = logins
            .into_iter()
            .filter_map(|mut l| {
                l.server = registry_server(&l.server).ok()?;
                Some(l)
            })
            .collect();
        let count = logins.len();
        *self.0.write().expect("registry logins lock") = logins;
        count
    }

    /// The registry `reference` is pulled from, and the user of the login held for it.
    pub fn user_for(&self, reference: &str) -> (String, Option<String>) {
        let server = registry_of_image(reference);
        let held = self.0.read().expect("registry logins lock");
        let user = held
            .iter()
            .find(|l| l.server == server)
            .map(|l| l.username.clone());
        (server, user)
    }

    /// Docker's credentials for pulling or inspecting `reference`, when a login is held for
    /// its registry.
    pub fn for_image(&self, reference: &str) -> Option<DockerCredentials> {
        let server = registry_of_image(reference);
        let held = self.0.read().expect("registry logins lock");
        let login = held.iter().find(|l| l.server == server)?;
        Some(DockerCredentials {
            username: Some(login.username.clone()),
            password: Some(login.password.clone()),
            serveraddress: Some(if server == DOCKER_HUB {
                DOCKER_HUB_ADDRESS.to_string()
            } else {
                server
            }),
            ..Default::default()
        })
    }
}

impl super::DockerError {
    /// A refused login told in plain words: which registry, whether ZedOps had a login for it,
    /// and the command that fixes it. Other failures are returned as they are.
    /// With `keep_detail`, Docker's words (the message's part from its first ` (`, already cut
    /// and escaped) stay after the sentence.
    pub(super) fn with_login(
        mut self,
        server: &str,
        user: Option<String>,
        keep_detail: bool,
    ) -> Self {
        if self.code != zedops_protocol::ErrorCode::RegistryAuthFailed {
            return self;
        }
        let detail = keep_detail
            .then(|| {
                self.message
                    .find(" (")
                    .map(|at| self.message[at..].to_string())
            })
            .flatten()
            .unwrap_or_default();
        let sentence = match user {
            None => format!(
                "{server} needs a login: add one with `zedops registry add {server} --user USER --password-stdin`"
            ),
            Some(user) => format!(
                "{server} refused the login of {user}: replace it with `zedops registry add {server} --user {user} --password-stdin`"
            ),
        };
        self.message = format!("{sentence}{detail}");
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(server: &str) -> RegistryLogin {
        RegistryLogin {
            server: server.into(),
            username: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn the_login_of_the_image_registry_is_used() {
        let logins = Logins::default();
        assert!(logins.for_image("127.0.0.1:5000/app:1").is_none());
        assert_eq!(
            logins.replace(vec![login("127.0.0.1:5000"), login("index.docker.io")]),
            2
        );
        let c = logins.for_image("127.0.0.1:5000/app:1").unwrap();
        assert_eq!(c.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(c.password.as_deref(), Some("p"));
        let hub = logins.for_image("nginx:1.27").unwrap();
        assert_eq!(hub.serveraddress.as_deref(), Some(DOCKER_HUB_ADDRESS));
        assert!(logins.for_image("127.0.0.1:5001/app:1").is_none());
        assert_eq!(logins.replace(Vec::new()), 0);
        assert!(logins.for_image("127.0.0.1:5000/app:1").is_none());
    }
}
