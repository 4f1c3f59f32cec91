//! The targets of the suite, ours and the peers, and how each is built or installed into the
//! cache folder (`target/bench-peers/`): cargo for the Rust ones, npm for Bun and `ws`.
//! A peer that cannot be built is skipped with the reason; nothing is ever substituted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dialect::Dialect;
use crate::server::Launch;

/// One server the suite measures.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) name: &'static str,
    pub(crate) dialect: Dialect,
    /// Ours: the numerator of every ratio.
    pub(crate) ours: bool,
    pub(crate) launch: Launch,
}

/// Names, as they appear in the tables.
pub(crate) const DEMO: &str = "vania-ws (demo)";
pub(crate) const AXUM: &str = "vania-ws (axum)";
pub(crate) const TUNGSTENITE: &str = "tokio-tungstenite";
pub(crate) const SOCKETIOXIDE: &str = "socketioxide";
pub(crate) const BUN: &str = "Bun";
pub(crate) const NODE_WS: &str = "Node ws";
/// `--baseline PATH`: an earlier build of the demo, measured as a peer (before/after).
pub(crate) const BASELINE: &str = "vania-ws (baseline)";

/// Where things are.
pub(crate) struct Paths {
    /// The workspace root.
    pub(crate) root: PathBuf,
    /// Cargo's target directory of the workspace.
    pub(crate) target: PathBuf,
    /// The suite's cache: peers' builds, npm packages, server logs.
    pub(crate) cache: PathBuf,
}

impl Paths {
    pub(crate) fn discover() -> Paths {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the bench crate is in the workspace")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cache = target.join("bench-peers");
        Paths {
            root,
            target,
            cache,
        }
    }

    fn release(&self, bin: &str) -> PathBuf {
        self.target.join("release").join(bin)
    }

    pub(crate) fn log(&self, name: &str) -> PathBuf {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.cache.join("logs").join(format!("{file}.log"))
    }
}

/// The environment of our servers: limits out of the way of the benchmark (no rate limit,
/// no heartbeat during a run, room for 19,000 connections), as a user tuning for load would.
fn vania_env() -> Vec<(String, String)> {
    [
        ("WS_MAX_CONNECTIONS", "30000"),
        ("WS_RATE_LIMIT_PER_SEC", "0"),
        ("WS_PING_INTERVAL_MS", "3600000"),
        ("WS_PONG_TIMEOUT_MS", "3600000"),
        ("WS_SEND_QUEUE_BYTES", "1048576"),
        ("WS_MAX_PENDING_HANDSHAKES", "1024"),
        ("WS_LISTEN_BACKLOG", "1024"),
        // Plain log lines, so that the suite can scan them for warnings.
        ("NO_COLOR", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Which targets to prepare.
pub(crate) struct Want {
    /// socketioxide, Bun and Node `ws` (the smoke run has only ours and tokio-tungstenite).
    pub(crate) all_peers: bool,
    /// An earlier `example-demo` binary to measure against ours in the same run.
    pub(crate) baseline: Option<PathBuf>,
}

/// Builds and installs what the targets need; returns the targets ready to start and the
/// ones skipped, with why. An error building our own server is fatal.
pub(crate) fn prepare(paths: &Paths, want: Want) -> Result<(Vec<Target>, Vec<String>), String> {
    // Fresh logs for every run, so that what they hold is this run's.
    let _ = std::fs::remove_dir_all(paths.cache.join("logs"));
    std::fs::create_dir_all(paths.cache.join("logs")).map_err(|e| e.to_string())?;
    let cwd = paths.cache.clone();
    let launch = |program: PathBuf, args: Vec<String>, env, name: &str| Launch {
        program,
        args,
        env,
        cwd: cwd.clone(),
        log: paths.log(name),
    };
    let mut targets = Vec::new();
    let mut skipped = Vec::new();

    build_bin(paths, "example-demo", "example-demo")?;
    build_bin(paths, "vania-ws-bench", "peer_tungstenite")?;
    targets.push(Target {
        name: DEMO,
        dialect: Dialect::Vania,
        ours: true,
        launch: launch(paths.release("example-demo"), vec![], vania_env(), DEMO),
    });

    // example-axum joins once the engine issue adds it to the workspace.
    if paths.root.join("examples/axum/Cargo.toml").exists() {
        match cargo(paths, &["build", "--release", "-p", "example-axum"], &[]) {
            Ok(()) if paths.release("example-axum").exists() => targets.push(Target {
                name: AXUM,
                dialect: Dialect::Vania,
                ours: true,
                launch: launch(paths.release("example-axum"), vec![], vania_env(), AXUM),
            }),
            Ok(()) => skipped.push(format!("{AXUM}: built, but no target/release/example-axum")),
            Err(e) => skipped.push(format!("{AXUM}: does not build: {e}")),
        }
    } else {
        skipped.push(format!("{AXUM}: skipped, examples/axum does not exist yet"));
    }

    targets.push(Target {
        name: TUNGSTENITE,
        dialect: Dialect::Raw,
        ours: false,
        launch: launch(
            paths.release("peer_tungstenite"),
            vec![],
            vec![],
            TUNGSTENITE,
        ),
    });
    if let Some(program) = want.baseline {
        if !program.is_file() {
            return Err(format!("--baseline {}: no such file", program.display()));
        }
        targets.push(Target {
            name: BASELINE,
            dialect: Dialect::Vania,
            ours: false,
            launch: launch(program, vec![], vania_env(), BASELINE),
        });
    }
    if !want.all_peers {
        return Ok((targets, skipped));
    }

    match build_socketioxide(paths) {
        Ok(bin) => targets.push(Target {
            name: SOCKETIOXIDE,
            dialect: Dialect::SocketIo,
            ours: false,
            launch: launch(bin, vec![], vec![], SOCKETIOXIDE),
        }),
        Err(e) => skipped.push(format!("{SOCKETIOXIDE}: {e}")),
    }

    match install_node_packages(paths) {
        Ok(node_modules) => {
            let peers = paths.root.join("vania-ws-bench/peers");
            match bun_binary(&node_modules) {
                Some(bun) => targets.push(Target {
                    name: BUN,
                    dialect: Dialect::Raw,
                    ours: false,
                    launch: launch(
                        bun,
                        vec![peers.join("bun/server.js").display().to_string()],
                        vec![],
                        BUN,
                    ),
                }),
                None => skipped.push(format!("{BUN}: npm installed no runnable bun binary")),
            }
            targets.push(Target {
                name: NODE_WS,
                dialect: Dialect::Raw,
                ours: false,
                launch: launch(
                    PathBuf::from("node"),
                    vec![peers.join("node-ws/server.js").display().to_string()],
                    vec![("NODE_PATH".to_owned(), node_modules.display().to_string())],
                    NODE_WS,
                ),
            });
        }
        Err(e) => skipped.push(format!("{BUN} and {NODE_WS}: {e}")),
    }
    Ok((targets, skipped))
}

/// Builds one binary of a workspace package with the release profile.
pub(crate) fn build_bin(paths: &Paths, package: &str, bin: &str) -> Result<(), String> {
    cargo(
        paths,
        &["build", "--release", "-p", package, "--bin", bin],
        &[],
    )
}

/// Runs cargo (the one that runs the suite, when there is one) in the workspace root.
pub(crate) fn cargo(paths: &Paths, args: &[&str], env: &[(&str, &Path)]) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("suite: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(&paths.root)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo {} failed ({status})", args.join(" ")))
    }
}

/// socketioxide is its own cargo project (so its dependencies stay out of our workspace),
/// built with its committed lock file into the cache.
fn build_socketioxide(paths: &Paths) -> Result<PathBuf, String> {
    let manifest = paths
        .root
        .join("vania-ws-bench/peers/socketioxide/Cargo.toml");
    let target = paths.cache.join("socketioxide-target");
    let manifest_arg = manifest.display().to_string();
    cargo(
        paths,
        &[
            "build",
            "--release",
            "--locked",
            "--manifest-path",
            &manifest_arg,
        ],
        &[("CARGO_TARGET_DIR", &target)],
    )?;
    Ok(target.join("release/peer-socketioxide"))
}

/// `npm install bun@1 ws@8` into the cache, once.
fn install_node_packages(paths: &Paths) -> Result<PathBuf, String> {
    let prefix = paths.cache.join("node");
    let node_modules = prefix.join("node_modules");
    if bun_binary(&node_modules).is_some() && node_modules.join("ws/package.json").exists() {
        return Ok(node_modules);
    }
    std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
    eprintln!("suite: npm install bun@1 ws@8 into {}", prefix.display());
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&prefix)
        .args(["bun@1", "ws@8"])
        .status()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !status.success() {
        return Err(format!("npm install failed ({status})"));
    }
    Ok(node_modules)
}

/// The bun executable from the npm package: its postinstall puts the platform binary at
/// `bun/bin/bun.exe`; without the postinstall it stays in `@oven/bun-linux-x64*/bin/bun`.
fn bun_binary(node_modules: &Path) -> Option<PathBuf> {
    let mut candidates = vec![node_modules.join("bun/bin/bun.exe")];
    if let Ok(dir) = std::fs::read_dir(node_modules.join("@oven")) {
        let mut platform: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin/bun"))
            .collect();
        platform.sort();
        candidates.extend(platform);
    }
    candidates.into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// Warnings, errors and panics the servers logged during the run (at most 20 lines).
pub(crate) fn log_findings(paths: &Paths) -> Vec<String> {
    let mut findings = Vec::new();
    let Ok(dir) = std::fs::read_dir(paths.cache.join("logs")) else {
        return findings;
    };
    let mut files: Vec<PathBuf> = dir.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for line in text.lines() {
            let upper = line.to_uppercase();
            if ["WARN", "ERROR", "PANIC", "EXCEPTION"]
                .iter()
                .any(|w| upper.contains(w))
            {
                if findings.len() == 20 {
                    findings.push("(more in the logs)".to_owned());
                    return findings;
                }
                findings.push(format!("{name}: {}", line.trim()));
            }
        }
    }
    findings
}
