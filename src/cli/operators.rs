//! `vitalhub serve`, `vitalhub user ...` and `vitalhub audit ...`.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::config::Config;
use crate::store::{AuditFilter, Role, Store};
use crate::web;

#[derive(Subcommand)]
pub enum UserAction {
    /// Add an operator; the password is read from stdin (one line) or asked for
    Add {
        name: String,
        /// viewer | reviewer | admin
        #[arg(long)]
        role: String,
        /// Division prefix the operator sees, e.g. 410611 or 4106; empty for the whole region
        #[arg(long, default_value = "")]
        scope: String,
    },
    /// List operators
    List,
    /// Disable an operator: no login, no API token, sessions ended
    Disable { name: String },
    /// Enable a disabled operator again
    Enable { name: String },
    /// Set a new password (read from stdin); ends the operator's sessions
    Passwd { name: String },
    /// Make a new API token for the operator (printed once; the old one stops working)
    Token { name: String },
}

#[derive(Subcommand)]
pub enum AuditAction {
    /// Check the hash chain from the first entry; exit 1 naming the first broken entry
    Verify,
    /// Show entries, newest first
    Show {
        #[arg(long)]
        actor: Option<String>,
        /// login | login_failed | view | list | export | assign | resolve | ...
        #[arg(long)]
        action: Option<String>,
        /// A discrepancy id (or its prefix)
        #[arg(long)]
        target: Option<String>,
        /// Entries at or after this time (RFC 3339 or YYYY-MM-DD)
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

fn read_password() -> Result<String> {
    eprint!("password: ");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        password.chars().count() >= 10,
        "a password has at least 10 characters"
    );
    Ok(password)
}

pub fn user(store: &mut Store, action: UserAction) -> Result<ExitCode> {
    match action {
        UserAction::Add { name, role, scope } => {
            let role = Role::parse(&role)
                .with_context(|| format!("--role {role}: viewer, reviewer or admin"))?;
            anyhow::ensure!(
                scope.chars().all(|c| c.is_ascii_digit()) && scope.len() <= 6,
                "--scope is a division prefix of up to 6 digits"
            );
            let hash = web::hash_password(&read_password()?).map_err(anyhow::Error::msg)?;
            store.add_user(&name, &hash, role, &scope)?;
            store.audit(
                "cli",
                "user_add",
                Some(&name),
                Some(&format!("{} {scope}", role.name())),
            )?;
            outln!(
                "added {name} ({}, scope {})",
                role.name(),
                if scope.is_empty() { "all" } else { &scope }
            );
        }
        UserAction::List => {
            outln!(
                "{:<16} {:<9} {:<7} {:<9} created",
                "name",
                "role",
                "scope",
                "state"
            );
            for u in store.users()? {
                outln!(
                    "{:<16} {:<9} {:<7} {:<9} {}",
                    u.name,
                    u.role.name(),
                    if u.scope.is_empty() { "all" } else { &u.scope },
                    if u.disabled { "disabled" } else { "active" },
                    &u.created_at[..10.min(u.created_at.len())]
                );
            }
        }
        UserAction::Disable { name } => {
            store.set_disabled(&name, true)?;
            store.audit("cli", "user_disable", Some(&name), None)?;
            outln!("disabled {name}");
        }
        UserAction::Enable { name } => {
            store.set_disabled(&name, false)?;
            store.audit("cli", "user_enable", Some(&name), None)?;
            outln!("enabled {name}");
        }
        UserAction::Passwd { name } => {
            let hash = web::hash_password(&read_password()?).map_err(anyhow::Error::msg)?;
            store.set_password(&name, &hash)?;
            store.audit("cli", "user_passwd", Some(&name), None)?;
            outln!("password of {name} changed; their sessions ended");
        }
        UserAction::Token { name } => {
            let token = web::new_token();
            store.set_api_token(&name, &web::token_hash(&token))?;
            store.audit("cli", "user_token", Some(&name), None)?;
            outln!("{token}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn audit(store: &Store, action: AuditAction) -> Result<ExitCode> {
    match action {
        AuditAction::Verify => {
            let check = store.verify_audit()?;
            match check.broken {
                None => {
                    outln!(
                        "audit log intact: {} entries, head {}",
                        check.entries,
                        check.head
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some((id, why)) => {
                    outln!("audit log BROKEN at entry {id}: {why}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AuditAction::Show {
            actor,
            action,
            target,
            since,
            limit,
        } => {
            let filter = AuditFilter {
                actor,
                action,
                target,
                since,
                limit,
            };
            for e in store.audit_entries(&filter)? {
                outln!(
                    "{:>6} {} {:<12} {:<14} {:<20} {}",
                    e.id,
                    &e.at[..19.min(e.at.len())],
                    e.actor,
                    e.action,
                    e.target.as_deref().unwrap_or("-"),
                    e.detail.as_deref().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Serves the review page and API until SIGTERM or SIGINT.
pub fn serve(config: &Config, store: Store, listen: Option<String>) -> Result<ExitCode> {
    let listen = listen.unwrap_or_else(|| config.web.listen.clone());
    super::server_runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}"))?;
        let address = listener.local_addr()?;
        // Tests and scripts read this line to find a port chosen by the system (:0).
        outln!("vitalhub review page on http://{address}");
        let state = Arc::new(web::AppState::new(store, config.clone()));
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM can be watched");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        web::serve(listener, state, stop).await?;
        Ok(ExitCode::SUCCESS)
    })
}
