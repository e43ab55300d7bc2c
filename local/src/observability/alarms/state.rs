//! Alarm state and history in SQLite (`alarm_states`, `alarm_history`):
//! what `dofs alarms` and the console read.

use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

use super::*;
use crate::store::{decoded, DbError};

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

/// An `AlarmState` column that holds something else.
#[derive(Debug, thiserror::Error)]
#[error("unknown alarm state {0:?}")]
struct UnknownState(String);

fn parse_state(text: &str) -> Result<AlarmState, UnknownState> {
    AlarmState::parse(text).ok_or_else(|| UnknownState(text.to_owned()))
}

/// The columns [`StoredState::from_row`] reads.
const STATE_COLUMNS: &str =
    "name, state, reason, reason_data, changed_at, evaluated_at, description";

impl StoredState {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get("name")?,
            state: decoded(row, "state", parse_state)?,
            reason: row.get("reason")?,
            reason_data: decoded(row, "reason_data", |t| serde_json::from_str(t))?,
            changed_at: row.get("changed_at")?,
            evaluated_at: row.get("evaluated_at")?,
            description: row.get("description")?,
        })
    }
}

impl Transition {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get("name")?,
            old_state: decoded(row, "old_state", parse_state)?,
            new_state: decoded(row, "new_state", parse_state)?,
            reason: row.get("reason")?,
            at: row.get("at")?,
        })
    }
}

/// Every stored alarm state, by name.
pub fn load_states(conn: &Connection) -> Result<Vec<StoredState>, DbError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {STATE_COLUMNS} FROM alarm_states ORDER BY name"
    ))?;
    let states = stmt
        .query_map([], StoredState::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(states)
}

/// The most recent transitions, newest first.
pub fn load_history(conn: &Connection, limit: usize) -> Result<Vec<Transition>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT name, old_state, new_state, reason, at FROM alarm_history ORDER BY id DESC LIMIT ?1",
    )?;
    let transitions = stmt
        .query_map([limit as i64], Transition::from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(transitions)
}

/// Reads a stored state, by name.
pub fn load_state(conn: &Connection, name: &str) -> Result<Option<StoredState>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {STATE_COLUMNS} FROM alarm_states WHERE name = ?1"),
            [name],
            StoredState::from_row,
        )
        .optional()?)
}
