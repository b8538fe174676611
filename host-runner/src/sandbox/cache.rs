//! Compiled module code kept between processes: one file per module and
//! engine, loaded by mapping it instead of compiling again.
//!
//! A kept file is `<dir>/<key>.cwasm`, where the key is the SHA-256 of the
//! engine's compatibility hash (wasmtime's version and every setting that
//! changes the code) and the module's bytes. A file is only ever written
//! whole, under a temporary name, synced, then renamed into place, so a
//! reader sees the old file, the new one, or none, and a mapping already
//! made keeps its own inode. Whatever goes wrong with the directory or a
//! file (missing, unreadable, cut short, from another wasmtime) costs a
//! compile, never an error.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

/// The module compiled by `engine`, from the kept file in `dir` when there
/// is a good one, else compiled and kept there for the next process.
pub(super) fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    dir: &Path,
) -> wasmtime::Result<Module> {
    let path = kept_path(dir, engine, wasm);
    if let Some(module) = load(engine, &path) {
        return Ok(module);
    }
    let module = Module::new(engine, wasm)?;
    // Keeping is best effort: a full disk or a read-only home still runs.
    if let Ok(bytes) = module.serialize() {
        let _ = keep(dir, &path, &bytes);
    }
    Ok(module)
}

/// Where the code of `wasm` compiled by `engine` is kept in `dir`.
fn kept_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    dir.join(format!("{}.cwasm", key(engine, wasm)))
}

/// The kept file's name: hex SHA-256 over the engine's compatibility hash
/// and the module.
fn key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let mut sha = hasher.0;
    sha.update(wasm);
    sha.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds what a `Hash` writes into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only `write` is used: the digest is taken from the inner state.
        0
    }
}

/// The kept module at `path`, when it exists, is safe to trust, and
/// wasmtime accepts it for this engine.
#[expect(
    unsafe_code,
    reason = "loading compiled code is unsafe: the one unsafe of host-runner"
)]
fn load(engine: &Engine, path: &Path) -> Option<Module> {
    if !trusted(path.parent()?, path) {
        return None;
    }
    // SAFETY: wasmtime requires the file to be the unmodified output of
    // `Module::serialize` and to stay unchanged while the module lives.
    // - Only srs writes this directory's files: it is the user's own cache
    //   directory (an absolute path from SRS_CACHE_DIR, XDG_CACHE_HOME or
    //   HOME), and `trusted` above refuses a directory or file that other
    //   users may write, and a file not owned by the directory's owner.
    //   Anyone who can write it as this user can already run code as this
    //   user (through the shell's startup files, for one).
    // - srs writes a file only whole (`keep`: a temporary name, synced, then
    //   renamed), and never in place, so the mapped inode never changes; a
    //   newer file replaces the name, not the mapping.
    // - The name is the SHA-256 of the engine's compatibility hash and the
    //   module, so the file is this module's code for this engine; wasmtime
    //   also checks its own version and settings and refuses a file from
    //   another build with an error.
    unsafe { Module::deserialize_file(engine, path) }.ok()
}

/// Writes `bytes` to `path` whole: to a temporary name in `dir` readable and
/// writable by the user alone, synced, then renamed into place.
fn keep(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    make_private_dir(dir)?;
    if let Some(why) = unusable(dir) {
        // Nothing would read it back; nothing is left for others to change.
        return Err(std::io::Error::other(why));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("module");
    let temporary: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = create_private(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(unix)]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Whether group or others may write what `metadata` describes: the one
/// test of a kept file and of its directory.
#[cfg(unix)]
fn others_may_write(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    metadata.mode() & 0o022 != 0
}

/// Whether `file` in `dir` may be run: both exist, neither may be written by
/// group or others, and the file's owner is the directory's.
#[cfg(unix)]
fn trusted(dir: &Path, file: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(dir), fs::metadata(file)) {
        (Ok(d), Ok(f)) => !others_may_write(&d) && !others_may_write(&f) && f.uid() == d.uid(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn trusted(_dir: &Path, file: &Path) -> bool {
    file.exists()
}

/// Why an existing cache directory is not used, if it is not: group or
/// others may write it (as a directory made under a umask of 002 may be).
/// Worth telling the user, since the only symptom is a compile every start.
#[cfg(unix)]
pub fn unusable(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let metadata = fs::metadata(dir).ok()?;
    let mode = metadata.mode();
    others_may_write(&metadata).then(|| {
        format!(
            "the code cache {} is not used: group or others may write it \
             (mode {:o}); `chmod go-w` it to use it",
            dir.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
pub fn unusable(_dir: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        Engine::new(&config).unwrap()
    }

    const WASM: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn the_key_names_the_module_and_the_engines_settings() {
        let fuel = engine();
        assert_eq!(key(&fuel, WASM), key(&engine(), WASM));
        assert_eq!(key(&fuel, WASM).len(), 64);
        let other = wat_module();
        assert_ne!(key(&fuel, WASM), key(&fuel, &other));
        let plain = Engine::new(&wasmtime::Config::new()).unwrap();
        assert_ne!(key(&fuel, WASM), key(&plain, WASM));
    }

    fn wat_module() -> Vec<u8> {
        wat::parse_str("(module (func (export \"f\")))").unwrap()
    }

    /// A cache directory holding one kept module, compiled by `engine`.
    struct Kept {
        _dir: tempfile::TempDir,
        cache: PathBuf,
        engine: Engine,
        wasm: Vec<u8>,
        path: PathBuf,
    }

    fn kept() -> Kept {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("srs");
        let engine = engine();
        let wasm = wat_module();
        load_or_compile(&engine, &wasm, &cache).unwrap();
        let path = kept_path(&cache, &engine, &wasm);
        Kept {
            _dir: dir,
            cache,
            engine,
            wasm,
            path,
        }
    }

    #[test]
    fn a_kept_module_is_loaded_and_a_bad_one_compiled_again() {
        let Kept {
            cache,
            engine,
            wasm,
            path,
            ..
        } = &kept();
        assert!(load(engine, path).is_some(), "kept and loadable");
        let names: Vec<_> = fs::read_dir(cache)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file is left: {names:?}");

        // Garbage under the name is refused by wasmtime and replaced.
        fs::write(path, b"not compiled code").unwrap();
        assert!(load(engine, path).is_none());
        let module = load_or_compile(engine, wasm, cache).unwrap();
        assert!(module.get_export("f").is_some());
        assert!(load(engine, path).is_some(), "replaced by good code");
    }

    #[cfg(unix)]
    #[test]
    fn a_file_or_directory_others_may_write_is_not_loaded() {
        use std::os::unix::fs::PermissionsExt;
        let Kept {
            cache,
            engine,
            path,
            ..
        } = &kept();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache), 0o700);
        assert_eq!(mode(path), 0o600);
        assert!(load(engine, path).is_some());

        fs::set_permissions(path, fs::Permissions::from_mode(0o620)).unwrap();
        assert!(load(engine, path).is_none(), "group-writable file");
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(unusable(cache).is_none());
        fs::set_permissions(cache, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(load(engine, path).is_none(), "world-writable directory");
        let why = unusable(cache).unwrap();
        assert!(
            why.contains("mode 777") && why.contains("chmod go-w"),
            "{why}"
        );
        fs::set_permissions(cache, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(load(engine, path).is_some());
        assert!(unusable(&cache.join("missing")).is_none());

        // A file owned by someone else is not run. Only root can give a
        // file away: as anyone else, chown fails and this part checks nothing.
        if std::os::unix::fs::chown(path, Some(65534), None).is_ok() {
            assert!(load(engine, path).is_none(), "another user's file");
        }
    }
}
