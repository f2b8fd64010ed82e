//! `attune migrate --from <sqlite data dir> --to postgres://…`: copies every tenant of an embedded store into
//! another store, the way a shop moves from one machine to several replicas on PostgreSQL.
//!
//! Everything goes through the `Store` trait, tenant by tenant: the tenant and its user-token secret, API keys
//! (by their hashes; revocations carried over), the tenant's settings, items, users with their consent ledgers,
//! anonymous visitors' consent ledgers, erased users' tombstones and users' token revocations, events with their sequence numbers and receipt times, item embeddings, and model
//! versions as stored (a pinned version stays pinned). Every step is
//! idempotent (upserts, events keyed by id, versions kept as they are), and events resume after the newest one
//! the target already holds, so a copy that stopped half-way is finished by running the command again. At the end the counts of both stores are
//! compared and any difference is an error.

use attune_core::{Tenant, TenantId, UserId};
use attune_store::{Store, StoreError, UserQuery};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Events read and written per step (one target transaction each).
const EVENT_CHUNK: usize = 5_000;
/// Items, users and embeddings per write.
const ROW_CHUNK: usize = 1_000;

/// What one tenant's copy found and wrote, and the counts both stores agree on afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCopy {
    pub tenant: String,
    pub items: u64,
    pub users: u64,
    pub events: u64,
    /// Events written by this run (the rest were already there).
    pub events_copied: u64,
    pub keys: u64,
    pub embeddings: u64,
    pub model_versions: u64,
}

impl TenantCopy {
    pub fn render(&self) -> String {
        format!(
            "{}: {} items, {} users, {} events ({} copied now), {} keys, {} embeddings, {} model versions",
            self.tenant,
            self.items,
            self.users,
            self.events,
            self.events_copied,
            self.keys,
            self.embeddings,
            self.model_versions
        )
    }
}

/// Copies every tenant of `source` into `target` and checks the counts; one line per tenant.
pub fn migrate(source: &dyn Store, target: &dyn Store, show_progress: bool) -> anyhow::Result<Vec<TenantCopy>> {
    let tenants = source.tenants()?;
    let total_events: u64 = tenants.iter().map(|t| source.stats(&t.id).map(|s| s.events)).sum::<Result<_, _>>()?;
    let bar = progress_bar(total_events, show_progress);
    let mut copies = Vec::with_capacity(tenants.len());
    for tenant in &tenants {
        bar.set_message(tenant.id.to_string());
        let copy = copy_tenant(source, target, tenant, &bar)?;
        tracing::info!(summary = %copy.render(), "tenant copied");
        copies.push(copy);
    }
    bar.finish_and_clear();
    Ok(copies)
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {msg} {wide_bar} {pos}/{len} events ({per_sec}, {eta} left)",
    )
    .expect("valid progress template");
    bar.set_style(style);
    bar
}

fn copy_tenant(
    source: &dyn Store,
    target: &dyn Store,
    tenant: &Tenant,
    bar: &ProgressBar,
) -> anyhow::Result<TenantCopy> {
    let id = &tenant.id;
    copy_tenant_record(source, target, tenant)?;
    copy_keys(source, target, id)?;
    for chunk in source.all_items(id)?.chunks(ROW_CHUNK) {
        target.upsert_items(id, chunk)?;
    }
    copy_users(source, target, id)?;
    copy_visitor_consents(source, target, id)?;
    copy_erasures(source, target, id)?;
    let events_copied = copy_events(source, target, id, bar)?;
    copy_embeddings(source, target, id)?;
    copy_models(source, target, id)?;
    let mut copy = verify(source, target, id)?;
    copy.events_copied = events_copied;
    Ok(copy)
}

fn copy_tenant_record(source: &dyn Store, target: &dyn Store, tenant: &Tenant) -> anyhow::Result<()> {
    if target.tenant(&tenant.id)?.is_some() {
        anyhow::ensure!(
            target.user_token_secret(&tenant.id)? == source.user_token_secret(&tenant.id)?,
            "tenant `{}` already exists in the target with another user-token secret: it is not a copy of this one",
            tenant.id
        );
        return Ok(());
    }
    let secret = source.user_token_secret(&tenant.id)?.unwrap_or_default();
    match target.create_tenant(tenant, &secret) {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(other) => Err(other.into()),
    }
}

/// Copies the tenant's settings and the statements of visitors' consent ledgers that the target lacks (a resumed
/// copy has a prefix of the ledger).
fn copy_visitor_consents(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    target.put_tenant_settings(tenant, &source.tenant_settings(tenant)?)?;
    let ledger = source.visitor_consent_ledger(tenant)?;
    let copied = target.visitor_consent_ledger(tenant)?;
    anyhow::ensure!(
        ledger.starts_with(&copied),
        "the visitors' consent ledger in the target is not a copy of this one's"
    );
    for (visitor, statement) in &ledger[copied.len()..] {
        target.record_visitor_consent(tenant, visitor, std::slice::from_ref(statement))?;
    }
    Ok(())
}

fn copy_keys(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    let copied = target.api_keys(tenant)?;
    for key in source.api_keys(tenant)? {
        match copied.iter().find(|k| k.key_id == key.key_id) {
            None => target.insert_api_key(&key)?,
            Some(existing) if existing.revoked_at.is_none() && key.revoked_at.is_some() => {
                target.revoke_api_key(tenant, &key.key_id)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn copy_users(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = source.list_users(tenant, &UserQuery { search: None, after, limit: ROW_CHUNK })?;
        target.upsert_users(tenant, &page.users)?;
        for user in &page.users {
            copy_consent_ledger(source, target, tenant, &user.id)?;
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Appends the statements of `user`'s consent ledger that the target lacks (a resumed copy has a prefix).
fn copy_consent_ledger(source: &dyn Store, target: &dyn Store, tenant: &TenantId, user: &UserId) -> anyhow::Result<()> {
    let statements = source.consent_history(tenant, user)?;
    let copied = target.consent_history(tenant, user)?;
    anyhow::ensure!(
        statements.starts_with(&copied),
        "the consent ledger of user `{user}` in the target is not a copy of this one's"
    );
    if statements.len() > copied.len() {
        target.record_consent(tenant, user, &statements[copied.len()..])?;
    }
    Ok(())
}

/// Copies the tombstones of erased users and the revocations of users' tokens.
fn copy_erasures(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    for (user, erased_at) in source.erasures(tenant)? {
        target.restore_erasure(tenant, &user, erased_at)?;
    }
    for (user, before) in source.token_revocations(tenant)? {
        target.revoke_user_tokens(tenant, &user, before)?;
    }
    Ok(())
}

/// Copies the events after the newest one the target holds; returns how many were written.
fn copy_events(source: &dyn Store, target: &dyn Store, tenant: &TenantId, bar: &ProgressBar) -> anyhow::Result<u64> {
    let mut after = target.recent_events(tenant, 1)?.first().map_or(0, |e| e.seq);
    let already = target.stats(tenant)?.events;
    bar.inc(already);
    let mut copied = 0;
    loop {
        let chunk = source.events_after(tenant, after, EVENT_CHUNK)?;
        let Some(last) = chunk.last() else { return Ok(copied) };
        after = last.seq;
        copied += target.restore_events(tenant, &chunk)?.accepted;
        bar.inc(chunk.len() as u64);
    }
}

fn copy_embeddings(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    for model in source.embedding_models(tenant)? {
        for chunk in source.item_embeddings(tenant, &model)?.chunks(ROW_CHUNK) {
            target.upsert_item_embeddings(tenant, &model, chunk)?;
        }
    }
    Ok(())
}

fn copy_models(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<()> {
    for kind in source.model_kinds(tenant)? {
        // Oldest first, so the target's pruning (which keeps the newest) sees them in their order.
        for info in source.model_snapshots(tenant, &kind)?.into_iter().rev() {
            if let Some(payload) = source.model_snapshot_payload(tenant, &kind, info.version)? {
                target.restore_model_snapshot(tenant, &info, &payload)?;
            }
        }
        if let Some(pinned) = source.pinned_model_version(tenant, &kind)? {
            target.pin_model_version(tenant, &kind, pinned)?;
        }
    }
    Ok(())
}

/// The counts of `tenant` in both stores; an error naming every difference.
fn verify(source: &dyn Store, target: &dyn Store, tenant: &TenantId) -> anyhow::Result<TenantCopy> {
    let counts = |store: &dyn Store| -> anyhow::Result<TenantCopy> {
        let stats = store.stats(tenant)?;
        let mut embeddings = 0;
        for model in store.embedding_models(tenant)? {
            embeddings += store.item_embeddings(tenant, &model)?.len() as u64;
        }
        let mut model_versions = 0;
        for kind in store.model_kinds(tenant)? {
            model_versions += store.model_snapshots(tenant, &kind)?.len() as u64;
        }
        Ok(TenantCopy {
            tenant: tenant.to_string(),
            items: stats.items,
            users: stats.users,
            events: stats.events,
            events_copied: 0,
            keys: store.api_keys(tenant)?.len() as u64,
            embeddings,
            model_versions,
        })
    };
    let (expected, found) = (counts(source)?, counts(target)?);
    anyhow::ensure!(
        expected == found,
        "tenant `{tenant}` differs after the copy:\n  source {}\n  target {}",
        expected.render(),
        found.render()
    );
    Ok(found)
}
