//! `zedops stats`: a running container's CPU, memory, network and block I/O, one line per sample
//! like `docker stats` (streaming until Ctrl-C unless `--no-stream`), or one JSON object per line.

use zedops_client::ContainerStats;

use super::watch::Watch;
use super::{CliError, CliResult, Global, open_stream, print_json, print_stdout};

pub async fn stats(
    global: &Global,
    agent: &str,
    container: &str,
    stream: bool,
    json: bool,
) -> CliResult {
    let (client, samples) = open_stream(global, |c| async move {
        c.stats(agent, container, stream).await
    })
    .await?;
    let mut samples = Watch::new(samples);
    if !json {
        print_stdout(&format!(
            "{:<8}  {:<22}  {:<7}  {:<20}  {:<20}  {}\n",
            "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"
        ))?;
    }
    let outcome = loop {
        let chunk = match samples.next().await {
            None => break Ok(()),
            Some(Err(err)) => break Err(CliError::from(err)),
            Some(Ok(chunk)) => chunk,
        };
        if let Some(stats) = &chunk.stats {
            let shown = if json {
                print_json(stats)
            } else {
                print_stdout(&line(stats))
            };
            if let Err(err) = shown {
                break Err(err);
            }
        }
        if let Some(end) = chunk.end {
            break match end.error_code {
                Some(code) if !samples.stopped => Err(CliError::new(code.as_str(), end.reason)),
                _ => Ok(()),
            };
        }
    };
    drop(samples);
    client.close().await;
    outcome
}

fn line(s: &ContainerStats) -> String {
    format!(
        "{:<8}  {:<22}  {:<7}  {:<20}  {:<20}  {}\n",
        format!("{:.2}%", s.cpu_percent),
        format!("{} / {}", size(s.memory_used), size(s.memory_limit)),
        format!("{:.2}%", s.memory_percent),
        format!("{} / {}", size(s.net_rx), size(s.net_tx)),
        format!("{} / {}", size(s.block_read), size(s.block_write)),
        s.pids
    )
}

/// Bytes in binary units, as `docker stats` prints memory.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker_stats() {
        assert_eq!(size(648), "648B");
        assert_eq!(size(1536), "1.5KiB");
        assert_eq!(size(7_800_000_000), "7.3GiB");
    }
}
