//! The REST catalog's commit endpoint. Tables are loaded and listed through the iceberg
//! crate's REST client; commits are POSTed here as `(requirements, updates)`, which the server
//! checks atomically.

use std::collections::HashMap;

use iceberg::spec::TableMetadata;
use iceberg::{TableRequirement, TableUpdate};
use serde::Deserialize;

use super::{CatalogConfig, LoadedTable};
use crate::error::{Error, Result};
use crate::storage::Secret;
use crate::table_name::TableName;

/// The REST commit endpoint, with its own authentication (the iceberg REST client does not
/// expose a way to send raw requirements and updates).
pub(crate) struct RestCommits {
    pub(super) uri: String,
    prefix: Option<String>,
    http: reqwest::Client,
    auth: RestAuth,
    /// Whether the server lists `POST /v1/{prefix}/transactions/commit` among its endpoints.
    pub(super) transactions: bool,
}

enum RestAuth {
    None,
    Token(Secret),
    ClientCredentials {
        endpoint: String,
        credential: Secret,
        scope: String,
        token: tokio::sync::Mutex<Option<Secret>>,
    },
}

#[derive(Deserialize)]
struct ConfigResponse {
    #[serde(default)]
    overrides: HashMap<String, String>,
    #[serde(default)]
    defaults: HashMap<String, String>,
    /// Absent: the server offers only the spec's default endpoints, which do not include
    /// multi-table commits.
    #[serde(default)]
    endpoints: Vec<String>,
}

/// How the REST spec names the multi-table commit endpoint in `/v1/config`'s `endpoints`.
const TRANSACTIONS_ENDPOINT: &str = "POST /v1/{prefix}/transactions/commit";

#[derive(Deserialize)]
struct CommitResponse {
    #[serde(rename = "metadata-location")]
    metadata_location: String,
    metadata: TableMetadata,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

impl RestCommits {
    pub(super) async fn connect(config: &CatalogConfig) -> Result<RestCommits> {
        let CatalogConfig::Rest {
            uri,
            warehouse,
            prefix,
            token,
            credential,
            oauth2_server_uri,
            scope,
        } = config
        else {
            return Err(Error::Config("not a REST catalog".to_string()));
        };
        let uri = uri.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Config(format!("cannot build an HTTP client: {e}")))?;
        let auth = match (token, credential) {
            (Some(token), _) => RestAuth::Token(token.clone()),
            (None, Some(credential)) => RestAuth::ClientCredentials {
                endpoint: oauth2_server_uri
                    .clone()
                    .unwrap_or_else(|| format!("{uri}/v1/oauth/tokens")),
                credential: credential.clone(),
                scope: scope.clone().unwrap_or_else(|| "catalog".to_string()),
                token: tokio::sync::Mutex::new(None),
            },
            (None, None) => RestAuth::None,
        };
        let mut commits = RestCommits {
            uri,
            prefix: prefix.clone(),
            http,
            auth,
            transactions: false,
        };
        // The server may announce the prefix to use; ask once.
        let mut request = commits.http.get(format!("{}/v1/config", commits.uri));
        if let Some(warehouse) = warehouse {
            request = request.query(&[("warehouse", warehouse)]);
        }
        let request = commits.authorize(request).await?;
        let response = request.send().await.map_err(|e| rest_error(None, e))?;
        if response.status().is_success() {
            let config: ConfigResponse = response.json().await.map_err(|e| rest_error(None, e))?;
            if let Some(p) = config
                .overrides
                .get("prefix")
                .or_else(|| config.defaults.get("prefix"))
                && commits.prefix.is_none()
            {
                commits.prefix = Some(p.clone());
            }
            commits.transactions = offers_transactions(&config.endpoints);
        } else {
            return Err(Error::Catalog {
                table: None,
                message: format!(
                    "GET {}/v1/config answered {}; check the catalog uri and credentials",
                    commits.uri,
                    response.status()
                ),
                retryable: response.status().is_server_error(),
            });
        }
        Ok(commits)
    }

    async fn authorize(&self, request: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        match &self.auth {
            RestAuth::None => Ok(request),
            RestAuth::Token(token) => Ok(request.bearer_auth(token.expose())),
            RestAuth::ClientCredentials {
                endpoint,
                credential,
                scope,
                token,
            } => {
                let mut cached = token.lock().await;
                if cached.is_none() {
                    let (id, secret) = credential
                        .expose()
                        .split_once(':')
                        .unwrap_or(("", credential.expose()));
                    let mut form = vec![
                        ("grant_type", "client_credentials"),
                        ("client_secret", secret),
                        ("scope", scope.as_str()),
                    ];
                    if !id.is_empty() {
                        form.push(("client_id", id));
                    }
                    let response = self
                        .http
                        .post(endpoint)
                        .form(&form)
                        .send()
                        .await
                        .map_err(|e| rest_error(None, e))?;
                    if !response.status().is_success() {
                        return Err(Error::Catalog {
                            table: None,
                            message: format!(
                                "the OAuth2 token endpoint {endpoint} refused the client credentials ({})",
                                response.status()
                            ),
                            retryable: response.status().is_server_error(),
                        });
                    }
                    let body: TokenResponse =
                        response.json().await.map_err(|e| rest_error(None, e))?;
                    *cached = Some(Secret::new(body.access_token));
                }
                let token = cached
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .unwrap_or_default();
                Ok(request.bearer_auth(token))
            }
        }
    }

    fn base_url(&self) -> String {
        let mut parts = vec![self.uri.clone(), "v1".to_string()];
        if let Some(prefix) = &self.prefix {
            parts.push(prefix.clone());
        }
        parts.join("/")
    }

    /// One `CommitTransactionRequest` with every table's requirements and updates. The server
    /// answers 204 with no body; the caller loads the tables again.
    pub(super) async fn commit_transaction(&self, changes: Vec<super::TableChange>) -> Result<()> {
        let names: Vec<String> = changes.iter().map(|c| c.current.name.to_string()).collect();
        let table_changes: Vec<serde_json::Value> = changes
            .into_iter()
            .map(|c| {
                let ident = c.current.name.ident();
                serde_json::json!({
                    "identifier": { "namespace": ident.namespace().clone().inner(), "name": ident.name() },
                    "requirements": c.requirements,
                    "updates": c.updates,
                })
            })
            .collect();
        let body = serde_json::json!({ "table-changes": table_changes });
        let url = format!("{}/transactions/commit", self.base_url());
        let request = self.authorize(self.http.post(url).json(&body)).await?;
        let response = request.send().await.map_err(|e| rest_error(None, e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let tables = names.join(", ");
        match status.as_u16() {
            409 => Err(Error::CommitConflict {
                table: tables,
                reason: rest_message(&text),
            }),
            400 if is_stale_sequence_number(&text) => Err(Error::CommitConflict {
                table: tables,
                reason: rest_message(&text),
            }),
            404 => Err(Error::Catalog {
                table: Some(tables),
                message: format!(
                    "the multi-table commit answered 404: {}",
                    rest_message(&text)
                ),
                retryable: false,
            }),
            // As for a single table: an unknown outcome is resolved by reading the tables.
            _ => Err(Error::Catalog {
                table: Some(tables),
                message: format!(
                    "the multi-table commit answered {status}: {}",
                    rest_message(&text)
                ),
                retryable: false,
            }),
        }
    }

    fn table_url(&self, name: &TableName) -> String {
        let ident = name.ident();
        let mut parts = vec![self.uri.clone(), "v1".to_string()];
        if let Some(prefix) = &self.prefix {
            parts.push(prefix.clone());
        }
        parts.push("namespaces".to_string());
        parts.push(ident.namespace().to_url_string());
        parts.push("tables".to_string());
        parts.push(ident.name().to_string());
        parts.join("/")
    }

    pub(super) async fn commit(
        &self,
        current: &LoadedTable,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Result<(String, TableMetadata)> {
        let name = &current.name;
        let ident = name.ident();
        let body = serde_json::json!({
            "identifier": { "namespace": ident.namespace().clone().inner(), "name": ident.name() },
            "requirements": requirements,
            "updates": updates,
        });
        let request = self.http.post(self.table_url(name)).json(&body);
        let request = self.authorize(request).await?;
        let response = request
            .send()
            .await
            .map_err(|e| rest_error(Some(name), e))?;
        let status = response.status();
        if status.is_success() {
            let body: CommitResponse = response
                .json()
                .await
                .map_err(|e| rest_error(Some(name), e))?;
            return Ok((body.metadata_location, body.metadata));
        }
        let text = response.text().await.unwrap_or_default();
        match status.as_u16() {
            409 => Err(Error::CommitConflict {
                table: name.to_string(),
                reason: rest_message(&text),
            }),
            400 if is_stale_sequence_number(&text) => Err(Error::CommitConflict {
                table: name.to_string(),
                reason: rest_message(&text),
            }),
            404 => Err(Error::TableNotFound {
                table: name.to_string(),
            }),
            // 500/502/504 leave the commit state unknown: the caller must re-read the table
            // (our commits are recognisable by their commit id) rather than blindly resend.
            _ => Err(Error::Catalog {
                table: Some(name.to_string()),
                message: format!("commit answered {status}: {}", rest_message(&text)),
                retryable: false,
            }),
        }
    }
}

/// Whether a `/v1/config` `endpoints` list offers multi-table commits (spacing aside).
fn offers_transactions(endpoints: &[String]) -> bool {
    endpoints
        .iter()
        .any(|e| e.split_whitespace().collect::<Vec<_>>().join(" ") == TRANSACTIONS_ENDPOINT)
}

fn rest_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.chars().take(500).collect())
}

/// Whether a 400 answer refuses a snapshot numbered from stale metadata: another writer
/// committed to the table (on any branch) after it was read. The requirements sent only guard
/// the ref being moved, and catalogs built on Iceberg's Java core without the fix of
/// apache/iceberg issue 15001 answer that case with 400 instead of 409. Nothing was applied, so it is a
/// conflict like any other: read the table again and re-plan.
fn is_stale_sequence_number(body: &str) -> bool {
    let message = rest_message(body);
    message.contains("Cannot add snapshot with sequence number")
        && message.contains("older than last sequence number")
}

pub(super) fn rest_error(table: Option<&TableName>, e: reqwest::Error) -> Error {
    Error::Catalog {
        table: table.map(ToString::to_string),
        message: format!("REST catalog: {e}"),
        retryable: e.is_timeout() || e.is_connect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_numbered_from_stale_metadata_is_a_conflict() {
        let body = r#"{"error":{"message":"Cannot add snapshot with sequence number 4 older than last sequence number 4","type":"ValidationException","code":400}}"#;
        assert!(is_stale_sequence_number(body));
        let other = r#"{"error":{"message":"Cannot set current snapshot to unknown snapshot id 7","type":"ValidationException","code":400}}"#;
        assert!(!is_stale_sequence_number(other));
        assert!(!is_stale_sequence_number("not json"));
    }

    #[test]
    fn multi_table_commits_are_used_only_when_the_server_lists_them() {
        let listed = |json: &str| {
            let config: ConfigResponse = serde_json::from_str(json).unwrap();
            offers_transactions(&config.endpoints)
        };
        assert!(listed(
            r#"{"defaults": {}, "overrides": {}, "endpoints": ["GET /v1/config", "POST /v1/{prefix}/transactions/commit"]}"#
        ));
        assert!(listed(
            r#"{"endpoints": ["POST  /v1/{prefix}/transactions/commit"]}"#
        ));
        // No `endpoints`: the spec's default set, which has no multi-table commit.
        assert!(!listed(r#"{"defaults": {}, "overrides": {}}"#));
        assert!(!listed(
            r#"{"endpoints": ["POST /v1/{prefix}/namespaces/{namespace}/tables/{table}"]}"#
        ));
    }
}
