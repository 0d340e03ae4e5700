//! `zedops template list|show|add|update|rm`, `zedops create`, `zedops rm`, `zedops images`,
//! `zedops pull` and `zedops rmi`: templates and deploys over a fresh connection each. The relay
//! checks roles (templates: admin to change, everyone to read; the rest: operator).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use zedops_client::{Deploy, load_template};
use zedops_protocol::{DeployFrame, ImageListResponse, TemplateListResponse};

use super::{CliError, CliResult, Global, JsonArg, call, print_json, print_stdout, table};

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// List the templates
    List {
        #[command(flatten)]
        output: JsonArg,
    },
    /// Show one template: its variables and specification
    Show {
        name: String,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Store a new template from a TOML or JSON file (admin; docs in README, examples in
    /// packaging/templates/)
    Add {
        file: PathBuf,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Store a new version of template NAME from a file (admin)
    Update {
        name: String,
        file: PathBuf,
        #[command(flatten)]
        output: JsonArg,
    },
    /// Remove a template (admin); containers made from it stay
    Rm {
        name: String,
        #[command(flatten)]
        output: JsonArg,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Template name
    #[arg(long)]
    template: String,
    /// The new container's name
    #[arg(long)]
    name: String,
    /// A value for one of the template's variables (repeatable)
    #[arg(long = "set", value_name = "VAR=VALUE")]
    set: Vec<String>,
    /// Start the container once created
    #[arg(long)]
    start: bool,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Container name, id or id prefix
    container: String,
    /// Remove it even when it is running (it is killed first)
    #[arg(long, short)]
    force: bool,
    /// Also remove its anonymous volumes (named volumes are kept)
    #[arg(long, short)]
    volumes: bool,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Image reference, e.g. nginx:1.27 (latest when it names no tag)
    image: String,
    #[command(flatten)]
    output: JsonArg,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Agent name or id
    #[arg(long, env = "ZEDOPS_AGENT", value_name = "AGENT")]
    agent: String,
    /// Image reference or id
    image: String,
    /// Remove it even when containers use it or it has several tags
    #[arg(long, short)]
    force: bool,
    #[command(flatten)]
    output: JsonArg,
}

fn bad_file(message: String) -> CliError {
    CliError::new("TEMPLATE_INVALID", message)
}

pub async fn template(global: &Global, command: TemplateCommand) -> CliResult {
    match command {
        TemplateCommand::List { output } => {
            let templates = call(global, |c| async move { c.templates().await }).await?;
            if output.json {
                return print_json(&TemplateListResponse { templates });
            }
            let rows: Vec<Vec<String>> = templates
                .iter()
                .map(|t| {
                    vec![
                        table::clean(&t.name),
                        t.version.to_string(),
                        table::clean(&t.image),
                        table::clean(t.updated_by.as_deref().unwrap_or("-")),
                        table::clean(&t.updated_at),
                        table::clean(&t.description),
                    ]
                })
                .collect();
            print_stdout(&table::render(
                &[
                    "NAME",
                    "VERSION",
                    "IMAGE",
                    "UPDATED BY",
                    "UPDATED",
                    "DESCRIPTION",
                ],
                &rows,
            ))
        }
        TemplateCommand::Show { name, output } => {
            let record = call(global, |c| async move { c.template(&name).await }).await?;
            if output.json {
                return print_json(&record);
            }
            let t = &record.template;
            let mut text = format!(
                "name        {}\nversion     {}\ndescription {}\nupdated     {} by {}\n\nvariables:\n",
                table::clean(&t.name),
                record.version,
                table::clean(&t.description),
                table::clean(&record.updated_at),
                table::clean(record.updated_by.as_deref().unwrap_or("-")),
            );
            for (var, v) in &t.variables {
                let mut marks = vec![];
                if v.required {
                    marks.push("required");
                }
                if v.secret {
                    marks.push("secret");
                }
                let default = v
                    .default
                    .as_deref()
                    .map(|d| format!(" (default {})", table::clean(d)))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "  {var}{}{default}: {}\n",
                    if marks.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", marks.join(", "))
                    },
                    table::clean(&v.description)
                ));
            }
            let spec = serde_json::to_string_pretty(&t.spec).expect("JSON serialises");
            // Pretty JSON's own newlines stay; anything a terminal acts on inside strings is escaped.
            let spec: Vec<String> = spec.lines().map(table::json_for_terminal).collect();
            text.push_str(&format!("\nspec:\n{}\n", spec.join("\n")));
            print_stdout(&text)
        }
        TemplateCommand::Add { file, output } => {
            let body = load_template(&file).map_err(bad_file)?;
            let saved = call(global, |c| async move { c.add_template(body).await }).await?;
            if output.json {
                return print_json(&saved);
            }
            eprintln!("added template {} (version {})", saved.name, saved.version);
            Ok(())
        }
        TemplateCommand::Update { name, file, output } => {
            let body = load_template(&file).map_err(bad_file)?;
            if body.name != name {
                return Err(bad_file(format!(
                    "{} is template {}, not {name}; fix its name or the command",
                    file.display(),
                    body.name
                )));
            }
            let saved = call(global, |c| async move { c.update_template(body).await }).await?;
            if output.json {
                return print_json(&saved);
            }
            eprintln!(
                "updated template {} to version {}",
                saved.name, saved.version
            );
            Ok(())
        }
        TemplateCommand::Rm { name, output } => {
            let saved = call(global, |c| async move { c.remove_template(&name).await }).await?;
            if output.json {
                return print_json(&saved);
            }
            eprintln!(
                "removed template {} (was version {}); containers made from it are kept",
                saved.name, saved.version
            );
            Ok(())
        }
    }
}

/// `--set VAR=VALUE` pairs; a name may be given once.
fn variables(set: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for pair in set {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::new(
                "INVALID_REQUEST",
                format!("--set {pair}: write it as VAR=VALUE"),
            ));
        };
        if out.insert(name.to_string(), value.to_string()).is_some() {
            return Err(CliError::new(
                "INVALID_REQUEST",
                format!("--set {name} is given twice"),
            ));
        }
    }
    Ok(out)
}

pub async fn create(global: &Global, args: CreateArgs) -> CliResult {
    let variables = variables(&args.set)?;
    let (agent, template, name) = (&args.agent, &args.template, &args.name);
    let (start, json) = (args.start, args.output.json);
    let last = call(global, |c| async move {
        let stream = c.deploy(agent, template, name, variables, start).await?;
        follow(stream, json).await
    })
    .await?;
    let Some(created) = last.created else {
        return Err(CliError::new(
            "INTERNAL",
            "the agent ended the deploy without naming the container",
        ));
    };
    if args.output.json {
        return print_json(&created);
    }
    for warning in &created.warnings {
        eprintln!("warning from Docker: {}", table::clean(warning));
    }
    eprintln!(
        "{} container {} ({}) on {} from template {}",
        if created.started {
            "created and started"
        } else {
            "created"
        },
        table::clean(&created.name),
        &created.id[..created.id.len().min(12)],
        table::clean(&args.agent),
        table::clean(&args.template),
    );
    Ok(())
}

pub async fn pull(global: &Global, args: PullArgs) -> CliResult {
    let (agent, image, json) = (&args.agent, &args.image, args.output.json);
    let last = call(global, |c| async move {
        follow(c.pull(agent, image).await?, json).await
    })
    .await?;
    let Some(pulled) = last.pulled else {
        return Err(CliError::new(
            "INTERNAL",
            "the agent ended the pull without naming the image",
        ));
    };
    if args.output.json {
        return print_json(&pulled);
    }
    eprintln!(
        "pulled {} ({}) on {}",
        table::clean(&pulled.image),
        table::clean(&pulled.id),
        table::clean(&args.agent)
    );
    Ok(())
}

/// Reads a deploy or pull stream to its end, showing progress on stderr (one line rewritten
/// in place on a terminal, a line per layer change otherwise, nothing with `--json`), and
/// returns the frames' `pulled` and `created` with the end. A failed end is the error.
async fn follow(mut stream: Deploy, json: bool) -> Result<DeployFrame, CliError> {
    let terminal = std::io::stderr().is_terminal();
    let mut seen = DeployFrame::default();
    let mut last_line = String::new();
    while let Some(frame) = stream.next().await {
        let frame = frame?;
        if let Some(progress) = &frame.progress
            && !json
        {
            let line = table::pull_summary(progress);
            if terminal {
                eprint!("\r\x1b[2K{line}");
            } else if line != last_line {
                eprintln!("{line}");
            }
            last_line = line;
        }
        if frame.pulled.is_some() {
            seen.pulled = frame.pulled;
        }
        if frame.created.is_some() {
            seen.created = frame.created;
        }
        if let Some(end) = frame.end {
            if terminal && !last_line.is_empty() && !json {
                eprintln!();
            }
            if let Some(code) = end.error_code {
                return Err(CliError::new(code.as_str(), table::clean(&end.reason)));
            }
            seen.end = Some(end);
            return Ok(seen);
        }
    }
    Err(CliError::new(
        "DISCONNECTED",
        "the connection ended before the deploy did; `zedops ps` shows whether the container exists",
    ))
}

pub async fn rm(global: &Global, args: RmArgs) -> CliResult {
    let (agent, container) = (args.agent.clone(), args.container.clone());
    let removed = call(global, |c| async move {
        c.remove_container(&agent, &container, args.force, args.volumes)
            .await
    })
    .await?;
    if args.output.json {
        return print_json(&removed);
    }
    eprintln!(
        "removed container {} ({}) from {}",
        table::clean(&args.container),
        &removed.container_id[..removed.container_id.len().min(12)],
        table::clean(&args.agent)
    );
    Ok(())
}

pub async fn images(global: &Global, args: ImagesArgs) -> CliResult {
    let agent = args.agent.clone();
    let images = call(global, |c| async move { c.images(&agent).await }).await?;
    if args.output.json {
        return print_json(&ImageListResponse {
            count: images.len(),
            images,
        });
    }
    let rows: Vec<Vec<String>> = images
        .iter()
        .flat_map(|i| {
            let tags = if i.repo_tags.is_empty() {
                vec!["<none>:<none>".to_string()]
            } else {
                i.repo_tags.clone()
            };
            tags.into_iter().map(move |tag| {
                let (repo, version) = tag.rsplit_once(':').unwrap_or((&tag, ""));
                vec![
                    table::clean(repo),
                    table::clean(version),
                    table::clean(
                        &i.id.trim_start_matches("sha256:")
                            [..12.min(i.id.trim_start_matches("sha256:").len())],
                    ),
                    format!("{:.1} MB", i.size as f64 / 1_000_000.0),
                    table::clean(&table::ago(i.created, table::now())),
                    table::clean(&i.used_by.join(", ")),
                ]
            })
        })
        .collect();
    print_stdout(&table::render(
        &["REPOSITORY", "TAG", "ID", "SIZE", "CREATED", "IN USE BY"],
        &rows,
    ))
}

pub async fn rmi(global: &Global, args: RmiArgs) -> CliResult {
    let (agent, image) = (args.agent.clone(), args.image.clone());
    let removed = call(global, |c| async move {
        c.remove_image(&agent, &image, args.force).await
    })
    .await?;
    if args.output.json {
        return print_json(&removed);
    }
    for tag in &removed.untagged {
        eprintln!("untagged {}", table::clean(tag));
    }
    for id in &removed.deleted {
        eprintln!("deleted {}", table::clean(id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_pairs_are_parsed_and_checked() {
        let vars = variables(&["A=1".into(), "B=x=y".into(), "C=".into()]).unwrap();
        assert_eq!(vars["B"], "x=y");
        assert_eq!(vars["C"], "");
        assert!(variables(&["A".into()]).is_err());
        assert!(variables(&["A=1".into(), "A=2".into()]).is_err());
    }

    #[test]
    fn the_shipped_example_templates_are_valid() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/templates");
        let mut names = vec![];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let body = load_template(&path).unwrap_or_else(|e| panic!("{e}"));
            names.push(body.name);
        }
        names.sort();
        assert_eq!(names, ["minecraft", "nginx", "project-zomboid"]);
        let pz = load_template(&dir.join("project-zomboid.toml")).unwrap();
        let values = BTreeMap::from([("ADMIN_PASSWORD".to_string(), "pw".to_string())]);
        let spec = pz.resolve(&values).unwrap().spec;
        let udp: Vec<u16> = spec
            .ports
            .iter()
            .filter(|p| p.protocol == zedops_protocol::PortProtocol::Udp)
            .map(|p| p.container)
            .collect();
        assert_eq!(udp, [16261, 16262]);
        assert_eq!(spec.volumes[0].source, "pz-data");
    }
}
