//! Who may do what: the one place the relay decides whether a role may send a subject.
//! Every client subject the relay accepts has a row here; a subject without one is refused.

use zedops_protocol::{Role, subject};

/// What a client subject needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any signed-in user (reading state).
    Read,
    /// Operators and admins (changing containers).
    Operate,
    /// Admins only (users, tokens, agents).
    Admin,
}

/// The client subjects the relay serves and what each needs.
pub const CLIENT_SUBJECTS: &[(&str, Need)] = &[
    (subject::AGENT_LIST, Need::Read),
    (subject::CONTAINER_LIST, Need::Read),
    (subject::CONTAINER_INSPECT, Need::Read),
    (subject::CONTAINER_LOGS, Need::Read),
    (subject::CONTAINER_STATS, Need::Read),
    (subject::STREAM_CANCEL, Need::Read),
    (subject::CONTAINER_START, Need::Operate),
    (subject::CONTAINER_STOP, Need::Operate),
    (subject::CONTAINER_RESTART, Need::Operate),
    (subject::AGENT_REVOKE, Need::Admin),
    (subject::SESSION_LIST, Need::Admin),
    (subject::SESSION_REVOKE, Need::Admin),
    (subject::TOKEN_CREATE, Need::Admin),
    (subject::AUDIT_LIST, Need::Admin),
    (subject::EVENT_SUBSCRIBE, Need::Read),
    // Users, registration tokens and agent tokens.
    (subject::USER_LIST, Need::Admin),
    (subject::USER_CREATE, Need::Admin),
    (subject::USER_UPDATE, Need::Admin),
    (subject::USER_PASSWORD, Need::Admin),
    (subject::TOKEN_LIST, Need::Admin),
    (subject::TOKEN_REVOKE, Need::Admin),
    (subject::AGENT_ROTATE, Need::Admin),
];

/// What `subject` needs, or `None` when the relay does not serve it.
pub fn need(subject: &str) -> Option<Need> {
    CLIENT_SUBJECTS
        .iter()
        .find(|(s, _)| *s == subject)
        .map(|(_, need)| *need)
}

/// Whether `role` satisfies `need`.
pub fn allows(role: Role, need: Need) -> bool {
    match need {
        Need::Read => true,
        Need::Operate => matches!(role, Role::Admin | Role::Operator),
        Need::Admin => role == Role::Admin,
    }
}

#[cfg(test)]
mod tests {
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
        }
        assert_eq!(need("container.remove"), None);
        // Relay → agent only: a client may never send it.
        assert_eq!(need(subject::AGENT_TOKEN), None);
        // Agent → relay only.
        assert_eq!(need(subject::AGENT_FORGET), None);
    }
}
