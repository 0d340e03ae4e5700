//! Who may do what: the one place the relay decides whether a role may send a request. What
//! each request needs is declared with the request itself ([`ClientRequestKind::need`], an
//! exhaustive match in the protocol crate), so a request the relay serves always has a role.

use zedops_protocol::{ClientRequestKind, Role};

pub use zedops_protocol::Need;

/// Every client subject the relay serves and what each needs, derived from
/// [`ClientRequestKind::ALL`] (for tests and tools that walk them all).
pub const CLIENT_SUBJECTS: &[(&str, Need)] = &{
    let mut all = [("", Need::Read); ClientRequestKind::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        let kind = ClientRequestKind::ALL[i];
        all[i] = (kind.subject(), kind.need());
        i += 1;
    }
    all
};

/// What the client request `subject` needs, or `None` when the relay does not serve it.
pub fn need(subject: &str) -> Option<Need> {
    ClientRequestKind::from_subject(subject).map(ClientRequestKind::need)
}

/// Whether `role` satisfies `need`.
pub fn allows(role: Role, need: Need) -> bool {
    match need {
        Need::Read => true,
        Need::Operate => matches!(role, Role::Admin | Role::Operator),
        Need::Admin => role == Role::Admin,
    }
}

/// The role a refusal tells the user to ask for: the least one that `need` allows.
pub fn least_role(need: Need) -> Role {
    match need {
        Need::Read => Role::Viewer,
        Need::Operate => Role::Operator,
        Need::Admin => Role::Admin,
    }
}

#[cfg(test)]
mod tests {
    use zedops_protocol::subject;

    use super::*;

    /// The intended matrix, written out by hand: a new subject without a row here fails.
    #[test]
    fn role_matrix_matches_the_intended_table() {
        let intended: &[(&str, [bool; 3])] = &[
            //                          admin, operator, viewer
            (subject::AGENT_LIST, [true, true, true]),
            (subject::CONTAINER_LIST, [true, true, true]),
            (subject::CONTAINER_INSPECT, [true, true, true]),
            (subject::CONTAINER_LOGS, [true, true, true]),
            (subject::CONTAINER_STATS, [true, true, true]),
            (subject::STREAM_CANCEL, [true, true, true]),
            (subject::CONTAINER_START, [true, true, false]),
            (subject::CONTAINER_STOP, [true, true, false]),
            (subject::CONTAINER_RESTART, [true, true, false]),
            (subject::AGENT_REVOKE, [true, false, false]),
            (subject::SESSION_LIST, [true, false, false]),
            (subject::SESSION_REVOKE, [true, false, false]),
            (subject::TOKEN_CREATE, [true, false, false]),
            (subject::AUDIT_LIST, [true, false, false]),
            (subject::EVENT_SUBSCRIBE, [true, true, true]),
            // Users, registration tokens and agent tokens.
            (subject::USER_LIST, [true, false, false]),
            (subject::USER_CREATE, [true, false, false]),
            (subject::USER_UPDATE, [true, false, false]),
            (subject::USER_PASSWORD, [true, false, false]),
            (subject::TOKEN_LIST, [true, false, false]),
            (subject::TOKEN_REVOKE, [true, false, false]),
            (subject::AGENT_ROTATE, [true, false, false]),
            // Agent self-update: admins only.
            (subject::AGENT_UPDATE, [true, false, false]),
            // Deploy and remove: operators deploy templates, admins write them, all see them.
            (subject::CONTAINER_DEPLOY, [true, true, false]),
            (subject::CONTAINER_REMOVE, [true, true, false]),
            (subject::IMAGE_LIST, [true, true, true]),
            (subject::IMAGE_PULL, [true, true, false]),
            (subject::IMAGE_REMOVE, [true, true, false]),
            (subject::TEMPLATE_LIST, [true, true, true]),
            (subject::TEMPLATE_SHOW, [true, true, true]),
            (subject::TEMPLATE_ADD, [true, false, false]),
            (subject::TEMPLATE_UPDATE, [true, false, false]),
            (subject::TEMPLATE_REMOVE, [true, false, false]),
            // Registry logins: admins only (even the list names what the fleet pulls from).
            (subject::REGISTRY_ADD, [true, false, false]),
            (subject::REGISTRY_LIST, [true, false, false]),
            (subject::REGISTRY_REMOVE, [true, false, false]),
            // Console and files: a shell and file writes are root in the container (admins);
            // the game console and reading files are operators' daily work; viewers none.
            (subject::CONTAINER_EXEC, [true, false, false]),
            (subject::CONTAINER_ATTACH, [true, true, false]),
            (subject::CONTAINER_SEND, [true, true, false]),
            (subject::STREAM_INPUT, [true, true, true]),
            (subject::FILE_LIST, [true, true, false]),
            (subject::FILE_GET, [true, true, false]),
            (subject::FILE_PUT, [true, false, false]),
            (subject::FILE_REMOVE, [true, false, false]),
            (subject::FILE_MKDIR, [true, false, false]),
            // Updating a container (pull, recreate with health check and rollback): operators.
            (subject::CONTAINER_UPDATE, [true, true, false]),
            // Update available: everyone reads it; asking the registries now is an operator's.
            (subject::UPDATES_LIST, [true, true, true]),
            (subject::UPDATES_CHECK, [true, true, false]),
        ];
        assert_eq!(
            intended.len(),
            CLIENT_SUBJECTS.len(),
            "every served subject needs a row in this table"
        );
        for (subject, expected) in intended {
            let need = need(subject).unwrap_or_else(|| panic!("{subject} is not served"));
            let got = [Role::Admin, Role::Operator, Role::Viewer].map(|r| allows(r, need));
            assert_eq!(&got, expected, "{subject}");
            assert!(allows(least_role(need), need));
        }
        assert_eq!(need("container.explode"), None);
        // Relay → agent only: a client may never send it.
        assert_eq!(need(subject::AGENT_TOKEN), None);
        assert_eq!(need(subject::AGENT_UPDATE_INSTALL), None);
        // A client may never hand an agent a spec of its own: only templates, resolved here.
        assert_eq!(need(subject::CONTAINER_CREATE), None);
        // Agent → relay only.
        assert_eq!(need(subject::AGENT_FORGET), None);
    }
}
