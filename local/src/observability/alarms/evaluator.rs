//! [`Evaluator`]: registers the alarms, evaluates them all on each tick, and
//! records and notifies every transition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::notify::deliver;
use super::*;
use crate::store::{Db, DbError};

/// Why the alarms could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("cannot build the webhook HTTP client")]
    WebhookClient(#[source] reqwest::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Evaluates every alarm on a schedule and acts on transitions.
pub struct Evaluator {
    db: Db,
    alarms: Vec<Alarm>,
    webhook: Option<WebhookConfig>,
    client: reqwest::Client,
}

impl Evaluator {
    /// Registers the alarms (new ones start in INSUFFICIENT_DATA, as a new
    /// CloudWatch alarm does; known ones keep their stored state).
    pub async fn register(
        db: Db,
        alarms: Vec<Alarm>,
        webhook: Option<WebhookConfig>,
        clock: Arc<dyn dofs_core::Clock>,
    ) -> Result<Arc<Self>, RegisterError> {
        // Before any write: a runtime that cannot notify does not start.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(RegisterError::WebhookClient)?;
        let now = dofs_core::timestamp::format(&clock.now());
        let register: Vec<(String, String)> = alarms
            .iter()
            .map(|a| (a.name.clone(), a.description.clone()))
            .collect();
        db.write(move |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO alarm_states(name, state, reason, reason_data, changed_at, description)
                 VALUES (?1, 'INSUFFICIENT_DATA', 'Unchecked: Initial alarm creation', '{}', ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET description = excluded.description",
            )?;
            for (name, description) in &register {
                insert.execute(params![name, now, description])?;
            }
            Ok(())
        })
        .await?;
        Ok(Arc::new(Self {
            db,
            alarms,
            webhook,
            client,
        }))
    }

    pub fn alarms(&self) -> &[Alarm] {
        &self.alarms
    }

    /// The shortest (scaled) period: how often evaluating is worth it.
    pub fn shortest_period(&self) -> Option<Duration> {
        self.alarms.iter().map(|a| a.period).min()
    }

    /// Evaluates every alarm at `now`, persists the results and notifies
    /// transitions. Returns the transitions.
    pub async fn evaluate_all(&self, now: DateTime<Utc>) -> Result<Vec<Transition>, DbError> {
        let now_ms = now.timestamp_millis();
        let alarms = self.alarms.clone();
        let evaluations = self
            .db
            .read(move |conn| {
                let current: BTreeMap<String, AlarmState> = load_states(conn)?
                    .into_iter()
                    .map(|s| (s.name, s.state))
                    .collect();
                alarms
                    .iter()
                    .map(|alarm| {
                        let old = current
                            .get(&alarm.name)
                            .copied()
                            .unwrap_or(AlarmState::InsufficientData);
                        let points = datapoints(conn, alarm, now_ms)?;
                        Ok((alarm.clone(), old, evaluate(alarm, &points, old, now)))
                    })
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .await?;
        let at = dofs_core::timestamp::format(&now);
        let rows: Vec<(String, AlarmState, AlarmState, String, String)> = evaluations
            .iter()
            .map(|(a, old, e)| {
                (
                    a.name.clone(),
                    *old,
                    e.state,
                    e.reason.clone(),
                    e.reason_data.to_string(),
                )
            })
            .collect();
        let at_row = at.clone();
        self.db
            .write(move |conn| {
                for (name, old, new, reason, data) in &rows {
                    if old == new {
                        conn.execute(
                            "UPDATE alarm_states SET evaluated_at = ?2 WHERE name = ?1",
                            params![name, at_row],
                        )?;
                    } else {
                        conn.execute(
                            "UPDATE alarm_states SET state = ?2, reason = ?3, reason_data = ?4,
                                 changed_at = ?5, evaluated_at = ?5 WHERE name = ?1",
                            params![name, new.as_str(), reason, data, at_row],
                        )?;
                        conn.execute(
                            "INSERT INTO alarm_history(name, old_state, new_state, reason, at)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![name, old.as_str(), new.as_str(), reason, at_row],
                        )?;
                    }
                }
                Ok(())
            })
            .await?;
        let mut transitions = Vec::new();
        for (alarm, old, eval) in evaluations {
            if old == eval.state {
                continue;
            }
            self.notify(&alarm, old, &eval, now);
            transitions.push(Transition {
                name: alarm.name.clone(),
                old_state: old,
                new_state: eval.state,
                reason: eval.reason.clone(),
                at: at.clone(),
            });
        }
        Ok(transitions)
    }

    fn notify(&self, alarm: &Alarm, old: AlarmState, eval: &Evaluation, at: DateTime<Utc>) {
        if eval.state == AlarmState::Alarm {
            tracing::warn!(
                target: "dofs::alarm",
                alarm = %alarm.name, old_state = %old, new_state = %eval.state,
                reason = %eval.reason, "alarm state changed"
            );
        } else {
            tracing::info!(
                target: "dofs::alarm",
                alarm = %alarm.name, old_state = %old, new_state = %eval.state,
                reason = %eval.reason, "alarm state changed"
            );
        }
        let Some(webhook) = self.webhook.clone() else {
            return;
        };
        let message = alarm_message(alarm, old, eval, at);
        let body = if webhook.raw {
            message
        } else {
            sns_envelope(&message, &alarm.name, eval.state, at)
        };
        tokio::spawn(deliver(
            self.client.clone(),
            webhook,
            body,
            alarm.name.clone(),
        ));
    }
}
