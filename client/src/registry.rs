//! Private registry logins, typed (admin): store one (the password goes to the relay once and
//! never comes back), list them (servers and users), remove one.

use zedops_protocol::{
    ClientRequest, RegistryAddRequest, RegistryAdded, RegistryListRequest, RegistryRemoveRequest,
    RegistryRemoved, RegistrySummary,
};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Stores (or replaces) the login for `server` (admin). The relay answers once every
    /// connected agent has taken the new set (or after 10 s).
    pub async fn add_registry(
        &self,
        server: &str,
        username: &str,
        password: String,
    ) -> Result<RegistryAdded, ClientError> {
        let request = RegistryAddRequest {
            server: server.to_string(),
            username: username.to_string(),
            password,
        };
        self.operation_request(ClientRequest::RegistryAdd(request))
            .await
    }

    /// The stored logins, by server: never their passwords (admin).
    pub async fn registries(&self) -> Result<Vec<RegistrySummary>, ClientError> {
        let list: zedops_protocol::RegistryListResponse = self
            .quick_request(ClientRequest::RegistryList(RegistryListRequest {}))
            .await?;
        Ok(list.registries)
    }

    /// Forgets the login for `server` (admin).
    pub async fn remove_registry(&self, server: &str) -> Result<RegistryRemoved, ClientError> {
        let request = RegistryRemoveRequest {
            server: server.to_string(),
        };
        self.operation_request(ClientRequest::RegistryRemove(request))
            .await
    }
}
