//! Reading a django-rest-durin database (`tessera import durin --from URL`): its users
//! (`auth_user`), clients (`durin_client`) and tokens (`durin_authtoken`), on SQLite or
//! PostgreSQL, read-only.
//!
//! What is a durin database is decided by Django's own record of it: `django_migrations` must
//! hold durin's migrations, and only ones this reader knows (django-rest-durin 1.1.0's
//! `0001_initial` and `0002_client_throttlerate`), so a schema it has not seen is refused rather
//! than misread. The two backends store two fields differently, which the queries account for:
//! a `DurationField` is a bigint of microseconds on SQLite and an `interval` on PostgreSQL, and a
//! `DateTimeField` is text (`YYYY-MM-DD HH:MM:SS[.ffffff]`, UTC) on SQLite and a `timestamptz`
//! on PostgreSQL.

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::{Connection, Row};
use tessera_core::net::redact_url;

/// durin's migrations this reader knows, in order.
pub const KNOWN_MIGRATIONS: &[&str] = &["0001_initial", "0002_client_throttlerate"];

/// A row of `auth_user`. Its `Debug` does not show the password hash.
#[derive(Clone)]
pub struct DurinUser {
    /// `id`.
    pub id: i64,
    /// `username`.
    pub username: String,
    /// `password`: Django's encoded hash.
    pub password: String,
    /// `is_active`.
    pub is_active: bool,
    /// `is_staff`.
    pub is_staff: bool,
    /// `date_joined`.
    pub date_joined: DateTime<Utc>,
}

impl std::fmt::Debug for DurinUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurinUser").field("id", &self.id).field("username", &self.username).finish_non_exhaustive()
    }
}

/// A row of `durin_client`.
#[derive(Debug, Clone)]
pub struct DurinClient {
    /// `id`.
    pub id: i64,
    /// `name`.
    pub name: String,
    /// `token_ttl`, in microseconds.
    pub token_ttl_micros: i64,
    /// `throttle_rate` (blank: the default); absent before durin's migration 0002.
    pub throttle_rate: String,
}

/// A row of `durin_authtoken`. Its `Debug` does not show the token.
#[derive(Clone)]
pub struct DurinToken {
    /// `token`: the token itself, in plaintext (durin keeps it so).
    pub token: String,
    /// `user_id`.
    pub user_id: i64,
    /// `client_id`.
    pub client_id: i64,
    /// `created`.
    pub created: DateTime<Utc>,
    /// `expiry`.
    pub expiry: DateTime<Utc>,
}

impl std::fmt::Debug for DurinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurinToken")
            .field("token", &"[redacted]")
            .field("user_id", &self.user_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Everything the import reads.
#[derive(Debug, Clone, Default)]
pub struct DurinData {
    /// durin's applied migrations.
    pub migrations: Vec<String>,
    /// Users.
    pub users: Vec<DurinUser>,
    /// Clients.
    pub clients: Vec<DurinClient>,
    /// Tokens.
    pub tokens: Vec<DurinToken>,
}

const MIGRATIONS: &str = "SELECT name FROM django_migrations WHERE app = 'durin' ORDER BY name";
const USERS_SQLITE: &str = "SELECT id, username, password, is_active, is_staff, date_joined FROM auth_user ORDER BY id";
const USERS_PG: &str = "SELECT id::bigint, username, password, is_active, is_staff, \
     (EXTRACT(EPOCH FROM date_joined) * 1000000)::bigint FROM auth_user ORDER BY id";
const TOKENS_SQLITE: &str = "SELECT token, user_id, client_id, created, expiry FROM durin_authtoken ORDER BY id";
const TOKENS_PG: &str = "SELECT token, user_id::bigint, client_id::bigint, \
     (EXTRACT(EPOCH FROM created) * 1000000)::bigint, (EXTRACT(EPOCH FROM expiry) * 1000000)::bigint \
     FROM durin_authtoken ORDER BY id";

fn clients_sql(pg: bool, has_rate: bool) -> String {
    let ttl = if pg { "(EXTRACT(EPOCH FROM token_ttl) * 1000000)::bigint" } else { "token_ttl" };
    let rate = if has_rate { "throttle_rate" } else { "''" };
    let id = if pg { "id::bigint" } else { "id" };
    format!("SELECT {id}, name, {ttl}, {rate} FROM durin_client ORDER BY id")
}

/// Reads a durin database at `url` (`sqlite:///path` or `postgres://…`), read-only.
pub async fn read(url: &str) -> Result<DurinData> {
    let shown = redact_url(url);
    if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if path.is_empty() || path == ":memory:" {
            bail!("--from {shown}: name the durin project's SQLite file (sqlite:///path/to/db.sqlite3)");
        }
        // Opened first as a file, so that a missing or unreadable one says so (SQLite would say
        // "unable to open database file").
        std::fs::File::open(path).with_context(|| format!("cannot read the durin database {path}"))?;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true).create_if_missing(false);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the durin database {path}"))?;
        let data = read_sqlite(&mut conn, path).await;
        let _ = conn.close().await;
        data
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut conn = sqlx::PgConnection::connect(url)
            .await
            .map_err(|e| anyhow!("cannot connect to the durin database {shown}: {}", redact_error(&e, url)))?;
        // Read-only and consistent: every table as of one moment.
        sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut conn).await?;
        let data = read_pg(&mut conn, &shown).await;
        let _ = sqlx::query("ROLLBACK").execute(&mut conn).await;
        let _ = conn.close().await;
        data
    } else {
        bail!("--from {shown}: use sqlite:///path/to/db.sqlite3 or postgres://user@host/db")
    }
}

fn redact_error(e: &sqlx::Error, url: &str) -> String {
    let text = e.to_string();
    let secrets = tessera_core::net::UrlSecrets::of(url);
    secrets.scrub(&text)
}

/// durin's migrations, checked: present, and all known.
fn check_migrations(found: Result<Vec<String>, sqlx::Error>, shown: &str) -> Result<Vec<String>> {
    let names = found.map_err(|e| {
        anyhow!("{shown} is not a Django database (it has no readable django_migrations table: {})", first_line(&e))
    })?;
    if names.is_empty() {
        bail!("{shown} is not a durin database: django-rest-durin's migrations were never applied to it");
    }
    if let Some(unknown) = names.iter().find(|n| !KNOWN_MIGRATIONS.contains(&n.as_str())) {
        bail!(
            "{shown} has durin migration '{unknown}', which this Tessera does not know (it reads django-rest-durin \
             1.1.0's schema: {}); nothing was imported",
            KNOWN_MIGRATIONS.join(", ")
        );
    }
    if !names.iter().any(|n| n == KNOWN_MIGRATIONS[0]) {
        bail!("{shown}: durin's migration {} is not applied; run Django's migrate first", KNOWN_MIGRATIONS[0]);
    }
    Ok(names)
}

fn first_line(e: &sqlx::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn table_error<'a>(table: &'static str, shown: &'a str) -> impl Fn(sqlx::Error) -> anyhow::Error + 'a {
    move |e| {
        let hint = if table == "auth_user" { " (a custom AUTH_USER_MODEL is not supported)" } else { "" };
        anyhow!("cannot read {table} from {shown}{hint}: {}", first_line(&e))
    }
}

async fn read_sqlite(conn: &mut sqlx::SqliteConnection, shown: &str) -> Result<DurinData> {
    let found = sqlx::query_scalar::<_, String>(MIGRATIONS).fetch_all(&mut *conn).await;
    let migrations = check_migrations(found, shown)?;
    let has_rate = migrations.iter().any(|m| m == KNOWN_MIGRATIONS[1]);
    let mut data = DurinData { migrations, ..DurinData::default() };
    for row in sqlx::query(USERS_SQLITE).fetch_all(&mut *conn).await.map_err(table_error("auth_user", shown))? {
        let joined: String = row.try_get(5)?;
        data.users.push(DurinUser {
            id: row.try_get(0)?,
            username: row.try_get(1)?,
            password: row.try_get(2)?,
            is_active: row.try_get(3)?,
            is_staff: row.try_get(4)?,
            date_joined: sqlite_time(&joined).with_context(|| format!("auth_user.date_joined '{joined}'"))?,
        });
    }
    let sql = clients_sql(false, has_rate);
    for row in sqlx::query(&sql).fetch_all(&mut *conn).await.map_err(table_error("durin_client", shown))? {
        data.clients.push(DurinClient {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            token_ttl_micros: row.try_get(2)?,
            throttle_rate: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        });
    }
    for row in sqlx::query(TOKENS_SQLITE).fetch_all(&mut *conn).await.map_err(table_error("durin_authtoken", shown))? {
        let (created, expiry): (String, String) = (row.try_get(3)?, row.try_get(4)?);
        data.tokens.push(DurinToken {
            token: row.try_get(0)?,
            user_id: row.try_get(1)?,
            client_id: row.try_get(2)?,
            created: sqlite_time(&created).with_context(|| format!("durin_authtoken.created '{created}'"))?,
            expiry: sqlite_time(&expiry).with_context(|| format!("durin_authtoken.expiry '{expiry}'"))?,
        });
    }
    Ok(data)
}

async fn read_pg(conn: &mut sqlx::PgConnection, shown: &str) -> Result<DurinData> {
    let found = sqlx::query_scalar::<_, String>(MIGRATIONS).fetch_all(&mut *conn).await;
    let migrations = check_migrations(found, shown)?;
    let has_rate = migrations.iter().any(|m| m == KNOWN_MIGRATIONS[1]);
    let mut data = DurinData { migrations, ..DurinData::default() };
    for row in sqlx::query(USERS_PG).fetch_all(&mut *conn).await.map_err(table_error("auth_user", shown))? {
        data.users.push(DurinUser {
            id: row.try_get(0)?,
            username: row.try_get(1)?,
            password: row.try_get(2)?,
            is_active: row.try_get(3)?,
            is_staff: row.try_get(4)?,
            date_joined: pg_time(row.try_get(5)?)?,
        });
    }
    let sql = clients_sql(true, has_rate);
    for row in sqlx::query(&sql).fetch_all(&mut *conn).await.map_err(table_error("durin_client", shown))? {
        data.clients.push(DurinClient {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            token_ttl_micros: row.try_get(2)?,
            throttle_rate: row.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
        });
    }
    for row in sqlx::query(TOKENS_PG).fetch_all(&mut *conn).await.map_err(table_error("durin_authtoken", shown))? {
        data.tokens.push(DurinToken {
            token: row.try_get(0)?,
            user_id: row.try_get(1)?,
            client_id: row.try_get(2)?,
            created: pg_time(row.try_get(3)?)?,
            expiry: pg_time(row.try_get(4)?)?,
        });
    }
    Ok(data)
}

/// A Django `DateTimeField` as its SQLite backend stores it: UTC text, with or without fractional
/// seconds (an offset, when one was written, is honoured).
fn sqlite_time(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|e| anyhow!("not a Django datetime: {e}"))?;
    Ok(naive.and_utc())
}

fn pg_time(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| anyhow!("a datetime out of range ({micros} µs)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_datetimes_as_django_writes_them() {
        let t = sqlite_time("2026-12-04 03:45:36.123456").expect("parses");
        assert_eq!(t.timestamp_micros(), 1_796_355_936_123_456);
        assert_eq!(sqlite_time("2026-12-04 03:45:36").expect("parses").timestamp(), 1_796_355_936);
        assert_eq!(sqlite_time("2026-12-04 04:45:36+01:00").expect("parses").timestamp(), 1_796_355_936);
        assert!(sqlite_time("yesterday").is_err());
    }

    #[test]
    fn unknown_or_missing_durin_schemas_are_refused() {
        let names = |n: &[&str]| Ok(n.iter().map(|s| s.to_string()).collect());
        assert!(check_migrations(names(&["0001_initial", "0002_client_throttlerate"]), "db").is_ok());
        assert!(check_migrations(names(&["0001_initial"]), "db").is_ok());
        let err = check_migrations(names(&[]), "db").expect_err("none").to_string();
        assert!(err.contains("not a durin database"), "{err}");
        let err = check_migrations(names(&["0001_initial", "0003_token_hash"]), "db").expect_err("newer").to_string();
        assert!(err.contains("'0003_token_hash', which this Tessera does not know"), "{err}");
    }
}
