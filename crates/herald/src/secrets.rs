//! The master keys that seal secrets at rest (herald-core `secrets` has the format): the
//! `secret_key` setting, or — on SQLite with none configured — the key file `herald.key` beside
//! the database, created on first start so that `herald serve` needs no setup. PostgreSQL has no
//! such fallback: its nodes run on several machines and must all hold the same key.

use std::io::Write;
use std::path::{Path, PathBuf};

use herald_core::secrets::{Keyring, MasterKey, generate_key};

use crate::config::Config;

/// The key file's name, in the SQLite database's folder.
pub const KEY_FILE: &str = "herald.key";

/// The keyring the configuration selects: `secret_key` (and `secret_key_previous`), else the
/// SQLite key file; an error naming `secret_key` on PostgreSQL without one.
pub fn keyring(config: &Config) -> Result<Keyring, String> {
    let (current, previous) = config.master_keys()?;
    let current = match (current, herald_store::sqlite_file(&config.database_url)) {
        (Some(key), _) => key,
        (None, Some(db)) => key_file(&key_file_path(&db))?,
        (None, None) => {
            return Err("setting `secret_key` (HERALD_SECRET_KEY) is required with PostgreSQL: it encrypts \
                        secrets at rest and every node needs the same one; `herald secrets generate` prints one"
                .into());
        }
    };
    Ok(Keyring::new(current, previous))
}

/// Where the key file of a SQLite database lives.
pub fn key_file_path(db: &Path) -> PathBuf {
    db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).join(KEY_FILE)
}

/// Reads the key file, creating it when missing.
fn key_file(path: &Path) -> Result<MasterKey, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_shared(path);
            MasterKey::parse(&text).map_err(|e| format!("key file {}: the key {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path),
        Err(e) => Err(format!("cannot read key file {}: {e}", path.display())),
    }
}

/// Writes a fresh key to a private temporary file, then links it into place: the link either
/// creates the key file whole or finds one there (another process starting at the same time
/// won), so no reader ever sees a half-written key.
fn create_key_file(path: &Path) -> Result<MasterKey, String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} key file {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of the", e))?;
    }
    let key = generate_key();
    let tmp = path.with_file_name(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let written = write_private(&tmp, &key);
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the master key file; back it up with the database");
            MasterKey::parse(&key).map_err(|e| format!("generated key {e}"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => key_file(path),
        // A filesystem without hard links: create the file in place instead.
        Err(_) => {
            write_private(path, &key).map_err(|e| fail("create", e))?;
            MasterKey::parse(&key).map_err(|e| format!("generated key {e}"))
        }
    }
}

/// Creates `path` (which must not exist) readable and writable by its owner only, with `key`.
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{key}\n").as_bytes())?;
    file.sync_all()
}

/// The key file should be its owner's alone; say so when it is not (but start: it is the
/// operator's file, and refusing would take the service down over a chmod).
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the master key file is readable by others; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_key_file_is_created_once_then_reused() {
        let dir = temp_dir();
        let path = dir.join("data").join(KEY_FILE);
        let first = key_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(key_file(&path).unwrap().id(), first.id());
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)], "no temporary file left behind");
        std::fs::write(&path, "garbage").unwrap();
        assert!(key_file(&path).unwrap_err().contains(&path.display().to_string()));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn configured_keys_win_and_postgres_requires_one() {
        let mut config = Config::defaults();
        config.database_url = "postgres://herald@localhost/herald".into();
        let err = keyring(&config).unwrap_err();
        assert!(err.contains("`secret_key`") && err.contains("HERALD_SECRET_KEY"), "{err}");
        let key = generate_key();
        config.secret_key = key.clone();
        assert_eq!(keyring(&config).unwrap().current_id(), MasterKey::parse(&key).unwrap().id());
        let dir = temp_dir();
        config.database_url = dir.join("herald.db").display().to_string();
        keyring(&config).unwrap();
        assert!(!dir.join(KEY_FILE).exists(), "no key file when a key is configured");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(key_file_path(Path::new("./herald-data/herald.db")), Path::new("./herald-data/herald.key"));
        assert_eq!(key_file_path(Path::new("herald.db")), Path::new("./herald.key"));
    }
}
