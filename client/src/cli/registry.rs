//! `zedops registry add|list|rm`: logins to private image registries (admin). The password is
//! read from stdin or a file, never from the command line, and is never printed.

use clap::Subcommand;
use zedops_protocol::RegistryListResponse;

use super::{CliResult, Global, JsonArg, NewPassword, call, print_json, print_stdout, table};

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Store the login for a private registry (replacing an older one); every agent uses it
    /// for pulls, deploys, updates and update checks of images from that registry
    Add {
        /// The registry, host[:port] (e.g. registry.example.com:5000; docker.io for Docker Hub)
        server: String,
        /// User name
        #[arg(long)]
        user: String,
        // The password or access token.
        #[command(flatten)]
        password: NewPassword,
        #[command(flatten)]
        output: JsonArg,
    },
    /// List the stored logins: servers and users, never passwords
    List {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Forget the login for a registry
    Rm {
        server: String,
        #[command(flatten)]
        output: JsonArg,
    },
}

pub async fn registry(global: &Global, command: RegistryCommand) -> CliResult {
    match command {
        RegistryCommand::Add {
            server,
            user,
            password,
            output,
        } => {
            let password = password.read(
                &["registry", "add"],
                "give the registry password with --password-stdin or --password-file FILE",
            )?;
            let added = call(global, |c| async move {
                c.add_registry(&server, &user, password).await
            })
            .await?;
            if output.json {
                return print_json(&added);
            }
            eprintln!(
                "{} the login for {} (user {}); {} connected agent(s) have it",
                if added.replaced { "replaced" } else { "stored" },
                table::clean(&added.server),
                table::clean(&added.username),
                added.agents
            );
            Ok(())
        }
        RegistryCommand::List { output } => {
            let registries = call(global, |c| async move { c.registries().await }).await?;
            if output.json {
                return print_json(&RegistryListResponse { registries });
            }
            let rows: Vec<Vec<String>> = registries
                .iter()
                .map(|r| {
                    vec![
                        table::clean(&r.server),
                        table::clean(&r.username),
                        table::clean(r.updated_by.as_deref().unwrap_or("-")),
                        table::clean(&r.updated_at),
                    ]
                })
                .collect();
            print_stdout(&table::render(
                &["SERVER", "USER", "UPDATED BY", "UPDATED"],
                &rows,
            ))
        }
        RegistryCommand::Rm { server, output } => {
            let removed = call(global, |c| async move { c.remove_registry(&server).await }).await?;
            if output.json {
                return print_json(&removed);
            }
            eprintln!(
                "removed the login for {}; {} connected agent(s) updated",
                table::clean(&removed.server),
                removed.agents
            );
            Ok(())
        }
    }
}
