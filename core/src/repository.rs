//! An open repository: a store plus its config, and the operations that need
//! no data key (listing, index loading) or take one explicitly (unlocking).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendError, FileKind};
use crate::config::{ChunkerParams, RepoConfig};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, MasterIndex};
use crate::keys::{AgentKey, Credentials, DataIdentity, DataRecipient, RepoSecret};
use crate::pack::{self, BlobEntry, BlobKind};
use crate::snapshot::Snapshot;
use crate::tree::Tree;

pub const IDENTITY_FILE: &str = "identity.age";
pub const SECRET_FILE: &str = "secret.age";

pub struct Repository {
    backend: Arc<dyn Backend>,
    pub config: RepoConfig,
}

/// Public record of an agent allowed to sign snapshots (`keys/agent-*.json`).
#[derive(Debug, Serialize, Deserialize)]
pub struct AgentRecord {
    pub name: String,
    pub public_key: String,
    pub created: chrono::DateTime<chrono::FixedOffset>,
    /// The custodian's or controller's signature over (repository, name,
    /// key); a record without one is refused (see `certify`). Absent in
    /// records written before certification existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certification: Option<crate::certify::Certification>,
}

pub struct InitOutcome {
    pub repo: Repository,
    pub credentials: Credentials,
}

impl Repository {
    /// Creates a repository and its keys. The data identity leaves this
    /// function only wrapped by `passphrase`.
    pub async fn init(
        backend: Arc<dyn Backend>,
        pd: &str,
        agent_name: &str,
        passphrase: &str,
        chunker: ChunkerParams,
    ) -> Result<InitOutcome> {
        chunker.validate()?;
        match backend.stat(FileKind::Config, "config").await {
            Ok(Some(_)) => return Err(Error::RepositoryExists(backend.location())),
            Ok(None) | Err(BackendError::Unavailable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        backend.create().await.map_err(|e| match e {
            BackendError::AlreadyExists { .. } => Error::RepositoryExists(backend.location()),
            e => e.into(),
        })?;
        let identity = DataIdentity::generate();
        let recipient = identity.recipient();
        let secret = RepoSecret::generate();
        let agent = AgentKey::generate();
        let config = RepoConfig::new(pd, recipient.encode(), chunker);

        backend
            .write_new(FileKind::Keys, IDENTITY_FILE, identity.wrap(passphrase)?)
            .await?;
        backend
            .write_new(
                FileKind::Keys,
                SECRET_FILE,
                recipient.encrypt(&secret.to_json())?,
            )
            .await?;
        let repo = Repository {
            backend,
            config: config.clone(),
        };
        // The first agent is certified by the custodian key derived from the
        // identity, which exists in plaintext only here and at unlock.
        let custodian = crate::certify::Certifier::custodian(&identity);
        repo.register_agent_certified(agent_name, &agent.public(), &custodian)
            .await?;
        // The config goes last: its presence means the repository is complete.
        repo.backend
            .write_new(FileKind::Config, "config", config.to_json())
            .await
            .map_err(|e| match e {
                BackendError::AlreadyExists { .. } => Error::RepositoryExists(repo.location()),
                e => e.into(),
            })?;
        let credentials = Credentials {
            format: Credentials::FORMAT.into(),
            version: 1,
            repo_id: config.id,
            pd: pd.to_string(),
            agent_name: agent_name.to_string(),
            data_recipient: recipient.encode(),
            repo_secret: secret,
            agent_signing_key: agent.to_hex(),
            custodian_key: Some(custodian.public_hex()),
        };
        Ok(InitOutcome { repo, credentials })
    }

    pub async fn open(backend: Arc<dyn Backend>) -> Result<Repository> {
        let config = RepoConfig::from_json(&config_bytes(&*backend).await?)?;
        Ok(Repository { backend, config })
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    pub fn recipient(&self) -> Result<DataRecipient> {
        DataRecipient::parse(&self.config.data_recipient)
    }

    /// Writes an **uncertified** agent record. `check` and `restore` refuse
    /// snapshots signed by such a key until it is certified; enrolment should
    /// call [`Repository::register_agent_certified`] instead.
    pub async fn register_agent(&self, name: &str, key: &AgentKey) -> Result<()> {
        self.write_agent_record(name, &key.public(), None).await
    }

    pub(crate) async fn write_agent_record(
        &self,
        name: &str,
        key: &crate::keys::AgentPublicKey,
        certification: Option<crate::certify::Certification>,
    ) -> Result<()> {
        let public = key.to_hex();
        let rec = AgentRecord {
            name: name.to_string(),
            public_key: public.clone(),
            created: chrono::Local::now().fixed_offset(),
            certification,
        };
        self.backend
            .write(
                FileKind::Keys,
                &format!("agent-{}.json", &public[..16]),
                serde_json::to_vec_pretty(&rec).expect("serialisable"),
            )
            .await?;
        Ok(())
    }

    /// Public keys of the agents allowed to sign snapshots.
    pub async fn agent_keys(&self) -> Result<HashMap<String, AgentRecord>> {
        let mut out = HashMap::new();
        for f in self.backend.list(FileKind::Keys).await? {
            if !(f.name.starts_with("agent-") && f.name.ends_with(".json")) {
                continue;
            }
            let data = self.backend.read(FileKind::Keys, &f.name).await?;
            let rec: AgentRecord = serde_json::from_slice(&data)
                .map_err(|e| Error::Corrupt(format!("keys/{}: {e}", f.name)))?;
            out.insert(rec.public_key.clone(), rec);
        }
        Ok(out)
    }

    /// Checks that a credential file belongs to this repository.
    pub fn check_credentials(&self, c: &Credentials) -> Result<()> {
        if c.repo_id != self.config.id || c.data_recipient != self.config.data_recipient {
            return Err(Error::CredentialMismatch {
                expected: self.config.id.short(),
                found: c.repo_id.short(),
            });
        }
        Ok(())
    }

    /// Unwraps the data identity with the custodian's passphrase.
    pub async fn unlock(&self, passphrase: &str) -> Result<DataIdentity> {
        let wrapped = self.backend.read(FileKind::Keys, IDENTITY_FILE).await?;
        let passphrase = passphrase.to_string();
        let identity =
            tokio::task::spawn_blocking(move || DataIdentity::unwrap(&wrapped, &passphrase))
                .await
                .map_err(|e| Error::task("unwrapping the data identity", e))??;
        self.check_identity(&identity)?;
        Ok(identity)
    }

    pub fn check_identity(&self, identity: &DataIdentity) -> Result<()> {
        if identity.recipient().encode() != self.config.data_recipient {
            return Err(Error::WrongKey);
        }
        Ok(())
    }

    /// The repository secret, recovered with the data identity (for the
    /// custodian, who may hold no agent credentials).
    pub async fn secret(&self, identity: &DataIdentity) -> Result<RepoSecret> {
        let data = self.backend.read(FileKind::Keys, SECRET_FILE).await?;
        RepoSecret::from_json(&identity.decrypt(&data)?)
    }

    /// Parses every snapshot; broken ones are returned apart, never dropped.
    pub async fn snapshots(&self) -> Result<(Vec<Snapshot>, Vec<(String, Error)>)> {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for f in self.backend.list(FileKind::Snapshots).await? {
            match self.backend.read(FileKind::Snapshots, &f.name).await {
                Ok(data) => match Snapshot::parse(&f.name, &data) {
                    Ok(s) => good.push(s),
                    Err(e) => bad.push((f.name, e)),
                },
                // Deleted by a concurrent forget between list and read.
                Err(BackendError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        good.sort_by(|a, b| a.payload.time.cmp(&b.payload.time).then(a.id.cmp(&b.id)));
        Ok((good, bad))
    }

    /// Finds a snapshot by id prefix or `latest`.
    pub async fn find_snapshot(&self, which: &str) -> Result<Snapshot> {
        let (all, _) = self.snapshots().await?;
        if which == "latest" {
            return all.into_iter().last().ok_or(Error::NoSnapshots);
        }
        if which.is_empty() || !which.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::UnknownSnapshot(which.to_string()));
        }
        let which_l = which.to_ascii_lowercase();
        let mut found: Vec<Snapshot> = all
            .into_iter()
            .filter(|s| s.id.to_hex().starts_with(&which_l))
            .collect();
        match found.len() {
            0 => Err(Error::UnknownSnapshot(which.to_string())),
            1 => Ok(found.pop().expect("one")),
            _ => Err(Error::AmbiguousSnapshot(which.to_string())),
        }
    }

    /// Loads every index file. Unreadable ones are reported, not fatal:
    /// blobs they held look missing, which makes a backup store them again.
    ///
    /// An index file that vanishes between the listing and its read was
    /// replaced by a concurrent prune, which writes the replacement before
    /// it deletes the original; so when one vanishes the index is listed
    /// again and the files not yet read are read, until a pass reads every
    /// file it listed (a few passes at most, since a prune holds the
    /// exclusive lock and rewrites each file once).
    pub async fn load_index(&self) -> Result<(MasterIndex, Vec<(String, Error)>)> {
        let mut idx = MasterIndex::default();
        let mut bad = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for _pass in 0..INDEX_LIST_PASSES {
            let mut vanished = false;
            for f in self.backend.list(FileKind::Index).await? {
                if !seen.insert(f.name.clone()) {
                    continue;
                }
                match self.backend.read(FileKind::Index, &f.name).await {
                    Ok(data) => match IndexFile::parse(&f.name, &data) {
                        Ok(file) => idx.add_file(f.name.parse().expect("hash-named"), &file),
                        Err(e) => bad.push((f.name, e)),
                    },
                    Err(BackendError::NotFound { .. }) => vanished = true,
                    Err(e) => return Err(e.into()),
                }
            }
            if !vanished {
                break;
            }
        }
        Ok((idx, bad))
    }

    /// Reads a whole pack and checks it against its name.
    pub async fn read_pack(&self, pack: &Id) -> Result<Vec<u8>> {
        let data = self.backend.read(FileKind::Packs, &pack.to_hex()).await?;
        if Id::of_bytes(&data) != *pack {
            return Err(Error::Corrupt(format!(
                "pack {pack} does not match its hash (altered or truncated)"
            )));
        }
        Ok(data)
    }

    /// Reads only what decrypting `entries` of a pack needs, with ranged
    /// reads: the age header, the segments holding them, and the last
    /// segment (age checks the stream's length with it). Returns the pack's
    /// age part with everything else zero; a large zeroed buffer is mapped
    /// lazily, so the parts never read cost no memory. Integrity rests on
    /// age's authenticated segments and the chunk ids, not the pack hash.
    pub async fn read_pack_parts(
        &self,
        pack: &Id,
        size: u64,
        entries: &[BlobEntry],
    ) -> Result<Vec<u8>> {
        let name = pack.to_hex();
        let corrupt = |what: &str| Error::Corrupt(format!("pack {name}: {what}"));
        if size < 12 {
            return Err(corrupt("too short"));
        }
        // `size` comes from an index file: a trailer magic read at its end
        // proves the pack really is that long before anything is sized by it.
        let tail = self.pack_tail(&name, size).await?;
        let tlen = u32::from_le_bytes(tail[..4].try_into().expect("4")) as u64;
        let age_length = size
            .checked_sub(12 + tlen)
            .ok_or_else(|| corrupt("trailer is too long"))?;
        for e in entries {
            pack::check_entry(e, age_length).map_err(|m| {
                Error::Corrupt(format!("pack {name}, as the index describes it: {m}"))
            })?;
        }
        let age_len = usize::try_from(age_length).map_err(|_| corrupt("too large"))?;
        let head_len = age_length.min(4096);
        let head = self
            .backend
            .read_range(FileKind::Packs, &name, 0, head_len)
            .await?;
        if head.len() as u64 != head_len {
            return Err(corrupt("shorter than the index records"));
        }
        let payload = pack::age_payload_start(&head)
            .filter(|p| p + 16 <= head_len)
            .ok_or_else(|| corrupt("no readable age header"))?;
        let mut buf = vec![0u8; age_len];
        buf[..head_len as usize].copy_from_slice(&head);
        let mut ranges = pack::segment_ranges(entries, payload, age_length);
        ranges.extend(pack::last_segment_range(payload, age_length));
        ranges.sort_unstable();
        for (start, end) in ranges {
            let part = self
                .backend
                .read_range(FileKind::Packs, &name, start, end - start)
                .await?;
            let dest = buf
                .get_mut(start as usize..end as usize)
                .filter(|d| d.len() == part.len())
                .ok_or_else(|| corrupt("a ranged read returned other bytes than asked"))?;
            dest.copy_from_slice(&part);
        }
        Ok(buf)
    }

    /// Reads a pack's trailer with two ranged reads (keyless).
    pub async fn read_pack_trailer(&self, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
        read_trailer(&*self.backend, pack, size).await
    }

    async fn pack_tail(&self, name: &str, size: u64) -> Result<Vec<u8>> {
        pack_tail(&*self.backend, name, size).await
    }
}

/// A pack's trailer entries, read with two ranged reads from a pack of
/// `size` bytes and checked for layout (keyless; see [`pack::check_trailer_layout`]).
pub async fn read_trailer(backend: &dyn Backend, pack: &Id, size: u64) -> Result<Vec<BlobEntry>> {
    let name = pack.to_hex();
    let tail = pack_tail(backend, &name, size).await?;
    let tlen = u32::from_le_bytes(tail[..4].try_into().expect("4")) as u64;
    if tlen + 12 > size {
        return Err(Error::Corrupt(format!("pack {name} trailer is too long")));
    }
    let buf = backend
        .read_range(FileKind::Packs, &name, size - 12 - tlen, tlen)
        .await?;
    if buf.len() as u64 != tlen {
        return Err(Error::Corrupt(format!("pack {name} trailer is cut short")));
    }
    let t: pack::PackTrailer = crate::compact::decode(&buf, &format!("pack {name} trailer"))?;
    if t.age_length.checked_add(tlen + 12) != Some(size) {
        return Err(Error::Corrupt(format!(
            "pack {name} trailer does not match its size"
        )));
    }
    pack::check_trailer_layout(&t.blobs, t.age_length)
        .map_err(|m| Error::Corrupt(format!("pack {name} trailer: {m}")))?;
    Ok(t.blobs)
}

/// The last 12 bytes of a pack believed to be `size` bytes long: the
/// trailer length and magic. Fails cleanly when the pack is shorter.
async fn pack_tail(backend: &dyn Backend, name: &str, size: u64) -> Result<Vec<u8>> {
    let corrupt = |what: &str| Error::Corrupt(format!("pack {name}: {what}"));
    if size < 12 {
        return Err(corrupt("too short"));
    }
    let tail = backend
        .read_range(FileKind::Packs, name, size - 12, 12)
        .await
        .map_err(|e| match e {
            BackendError::NotFound { .. } => e.into(),
            e => corrupt(&format!("no trailer where its size says ({e})")),
        })?;
    if tail.len() != 12 || &tail[4..] != pack::MAGIC {
        return Err(corrupt("no trailer where its recorded size says it ends"));
    }
    Ok(tail)
}

/// The bytes of a store's repository config; a store without one is an
/// error that says so (missing directory or bucket, or no config in it).
pub async fn config_bytes(backend: &dyn Backend) -> Result<Vec<u8>> {
    match backend.read(FileKind::Config, "config").await {
        Ok(d) => Ok(d),
        Err(BackendError::NotFound { .. }) => Err(Error::NotARepository(backend.location())),
        Err(BackendError::Unavailable { location, reason }) => {
            Err(Error::NoRepository { location, reason })
        }
        Err(e) => Err(e.into()),
    }
}

/// The config of the repository a store holds, or `None` for an empty or
/// not yet created store (a target about to receive one).
pub async fn existing_config(backend: &dyn Backend) -> Result<Option<RepoConfig>> {
    match backend.read(FileKind::Config, "config").await {
        Ok(d) => Ok(Some(RepoConfig::from_json(&d)?)),
        Err(BackendError::NotFound { .. } | BackendError::Unavailable { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Reads blobs with the data identity: trees for listing and restore.
/// How many times `Repository::load_index` lists the index when files
/// vanish under it (see there).
const INDEX_LIST_PASSES: usize = 4;

/// Tree packs are cached decrypted; trees are small and read many times.
pub struct BlobReader<'a> {
    repo: &'a Repository,
    pub index: MasterIndex,
    identity: &'a DataIdentity,
    secret: RepoSecret,
    cache: Mutex<HashMap<Id, Arc<Vec<u8>>>>,
}

impl<'a> BlobReader<'a> {
    pub async fn new(repo: &'a Repository, identity: &'a DataIdentity) -> Result<BlobReader<'a>> {
        repo.check_identity(identity)?;
        let secret = repo.secret(identity).await?;
        let (index, _) = repo.load_index().await?;
        Ok(BlobReader {
            repo,
            index,
            identity,
            secret,
            cache: Mutex::new(HashMap::new()),
        })
    }

    pub fn secret(&self) -> &RepoSecret {
        &self.secret
    }

    pub fn identity(&self) -> &DataIdentity {
        self.identity
    }

    pub fn repo(&self) -> &Repository {
        self.repo
    }

    /// The parts of a pack that hold `entries` (see
    /// [`Repository::read_pack_parts`]), when the index knows its size.
    pub async fn pack_parts(&self, pack: &Id, entries: &[BlobEntry]) -> Result<Vec<u8>> {
        let size = self
            .index
            .pack_size(pack)
            .ok_or_else(|| Error::Corrupt(format!("pack {pack} is in no index")))?;
        self.repo.read_pack_parts(pack, size, entries).await
    }

    /// A pack's stored bytes, checked against its name (not decrypted).
    pub async fn pack_stored(&self, pack: &Id) -> Result<Vec<u8>> {
        self.repo.read_pack(pack).await
    }

    /// Drops the cached tree packs (after a restore has planned, say).
    pub fn forget_cached(&self) {
        self.cache.lock().expect("not poisoned").clear();
    }

    /// Decrypted plaintext of a pack, cached for tree packs.
    pub async fn pack_plain(&self, pack: &Id, cache: bool) -> Result<Arc<Vec<u8>>> {
        if let Some(p) = self.cache.lock().expect("not poisoned").get(pack) {
            return Ok(p.clone());
        }
        let stored = self.repo.read_pack(pack).await?;
        // Decryption is CPU work: off the async threads, so that several
        // packs in flight decrypt on several cores.
        let identity = self.identity.clone();
        let plain = tokio::task::spawn_blocking(move || pack::decrypt_pack(&stored, &identity))
            .await
            .map_err(|e| Error::task(&format!("decrypting pack {pack}"), e))??;
        let plain = Arc::new(plain);
        if cache {
            self.cache
                .lock()
                .expect("not poisoned")
                .insert(*pack, plain.clone());
        }
        Ok(plain)
    }

    pub async fn load_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let loc = *self
            .index
            .get(id)
            .ok_or_else(|| Error::Corrupt(format!("blob {id} is not in any index")))?;
        let plain = self
            .pack_plain(&loc.pack, loc.kind == BlobKind::Tree)
            .await?;
        let entry = loc.entry(*id);
        pack::decode_blob(
            pack::blob_slice(&plain, &entry)?,
            &entry,
            Some(&self.secret),
        )
    }

    pub async fn load_tree(&self, id: &Id) -> Result<Tree> {
        Tree::decode(&self.load_blob(id).await?)
    }
}
