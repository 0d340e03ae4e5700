//! An error and its causes as one line of text, for messages to people and logs.

/// `err` and its sources joined with `: `, each cause once: libraries' own messages
/// ("error sending request", "client error (Connect)") say little without the I/O error under
/// them, and some already repeat their cause.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(&'static str, std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn joins_each_cause_once() {
        let refused = || std::io::Error::other("connection refused");
        assert_eq!(
            error_chain(&Outer("error sending request", refused())),
            "error sending request: connection refused"
        );
        assert_eq!(
            error_chain(&Outer("connect: connection refused", refused())),
            "connect: connection refused"
        );
    }
}
