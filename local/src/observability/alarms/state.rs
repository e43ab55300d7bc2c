//! Alarm state and history in SQLite (`alarm_states`, `alarm_history`):
//! what `dofs alarms` and the console read.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::store::DbError;

/// The stored state of one alarm.
#[derive(Debug, Clone, Serialize)]
pub struct StoredState {
    pub name: String,
    pub state: AlarmState,
    pub reason: String,
    pub reason_data: Value,
    pub changed_at: String,
    pub evaluated_at: Option<String>,
    pub description: String,
}

/// One transition, as kept in `alarm_history`.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub name: String,
    pub old_state: AlarmState,
    pub new_state: AlarmState,
    pub reason: String,
    pub at: String,
}

fn parse_state(text: &str) -> Result<AlarmState, DbError> {
    AlarmState::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown alarm state {text:?}")))
}

/// Every stored alarm state, by name.
pub fn load_states(conn: &Connection) -> Result<Vec<StoredState>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, state, reason, reason_data, changed_at, evaluated_at, description
         FROM alarm_states ORDER BY name",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(name, state, reason, data, changed_at, evaluated_at, description)| {
                Ok(StoredState {
                    name,
                    state: parse_state(&state)?,
                    reason,
                    reason_data: serde_json::from_str(&data)?,
                    changed_at,
                    evaluated_at,
                    description,
                })
            },
        )
        .collect()
}

/// The most recent transitions, newest first.
pub fn load_history(conn: &Connection, limit: usize) -> Result<Vec<Transition>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, old_state, new_state, reason, at FROM alarm_history ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(name, old, new, reason, at)| {
            Ok(Transition {
                name,
                old_state: parse_state(&old)?,
                new_state: parse_state(&new)?,
                reason,
                at,
            })
        })
        .collect()
}

/// Reads a stored state, by name.
pub fn load_state(conn: &Connection, name: &str) -> Result<Option<StoredState>, DbError> {
    let exists: Option<String> = conn
        .query_row(
            "SELECT name FROM alarm_states WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    match exists {
        None => Ok(None),
        Some(_) => Ok(load_states(conn)?.into_iter().find(|s| s.name == name)),
    }
}
