//! Operators (users of the review page and API) and their browser sessions.
//!
//! Only hashes are stored: argon2 for passwords (made by the caller), SHA-256 for session and
//! API tokens (random 256-bit values, so a fast hash is enough).

use super::sql::{args, Row};
use super::{now, Result, Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Reviewer,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    /// Reviewers and admins act on discrepancies; viewers only read.
    pub fn may_act(self) -> bool {
        self >= Role::Reviewer
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    /// A division prefix; empty for the whole region.
    pub scope: String,
    pub disabled: bool,
    pub created_at: String,
}

const SELECT_USER: &str =
    "SELECT id, name, password_hash, role, scope, disabled, created_at FROM users";

fn user_row(r: &Row) -> Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        password_hash: r.get(2)?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Unsupported(format!("unknown role {role}")))?,
        scope: r.get(4)?,
        disabled: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl Store {
    pub fn add_user(
        &mut self,
        name: &str,
        password_hash: &str,
        role: Role,
        scope: &str,
    ) -> Result<i64> {
        if self.user(name)?.is_some() {
            return Err(StoreError::Unsupported(format!(
                "user {name} exists already"
            )));
        }
        self.conn
            .query_one(
                "INSERT INTO users (name, password_hash, role, scope, created_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                args![name, password_hash, role.name(), scope, now()],
            )?
            .get(0)
    }

    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.conn
            .query_opt(&format!("{SELECT_USER} WHERE name = ?1"), args![name])?
            .map(|r| user_row(&r))
            .transpose()
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.conn
            .query(&format!("{SELECT_USER} ORDER BY name"), &[])?
            .iter()
            .map(user_row)
            .collect()
    }

    fn update_user(&mut self, name: &str, set: &str, value: super::sql::Param) -> Result<()> {
        let n = self.conn.execute(
            &format!("UPDATE users SET {set} = ?2 WHERE name = ?1"),
            &[super::sql::Param::Text(name), value],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user {name}")));
        }
        Ok(())
    }

    /// A new password ends every session of the user.
    pub fn set_password(&mut self, name: &str, password_hash: &str) -> Result<()> {
        self.update_user(
            name,
            "password_hash",
            super::sql::Param::Text(password_hash),
        )?;
        self.end_sessions_of(name)
    }

    /// A disabled user can no longer log in or use a token; their sessions end now.
    pub fn set_disabled(&mut self, name: &str, disabled: bool) -> Result<()> {
        self.update_user(name, "disabled", super::sql::Param::Int(disabled.into()))?;
        self.end_sessions_of(name)
    }

    /// Replaces the user's API token (its SHA-256).
    pub fn set_api_token(&mut self, name: &str, token_hash: &str) -> Result<()> {
        self.update_user(name, "token_hash", super::sql::Param::Text(token_hash))
    }

    /// The enabled user an API token belongs to.
    pub fn user_by_token(&self, token_hash: &str) -> Result<Option<User>> {
        self.conn
            .query_opt(
                &format!("{SELECT_USER} WHERE token_hash = ?1 AND disabled = 0"),
                args![token_hash],
            )?
            .map(|r| user_row(&r))
            .transpose()
    }

    pub fn create_session(
        &mut self,
        token_hash: &str,
        user_id: i64,
        csrf: &str,
        expires_at: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![token_hash, user_id, csrf, now(), expires_at],
        )?;
        Ok(())
    }

    /// The enabled user of a session that has not expired, with its CSRF token.
    pub fn session(&self, token_hash: &str) -> Result<Option<(User, String)>> {
        let Some(r) = self.conn.query_opt(
            "SELECT u.id, u.name, u.password_hash, u.role, u.scope, u.disabled, u.created_at, s.csrf
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND u.disabled = 0",
            args![token_hash, now()],
        )?
        else {
            return Ok(None);
        };
        Ok(Some((user_row(&r)?, r.get(7)?)))
    }

    pub fn end_session(&mut self, token_hash: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM sessions WHERE token_hash = ?1 OR expires_at <= ?2",
            args![token_hash, now()],
        )?;
        Ok(())
    }

    fn end_sessions_of(&mut self, name: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = ?1)",
            args![name],
        )?;
        Ok(())
    }
}
