//! The one selection path of every scenario, for the API, the storefront's slots and the console's preview:
//! the shopper's latest events → candidate tiers ([`super::plan`]) → hard rules, boosts and diversity
//! ([`super::select`]) → explanations ([`super::explain`]).

use super::explain::explain;
use super::model::RecsModel;
use super::plan::{Depth, plan};
use super::request::{Basis, ListRequest, Recommended, Rules};
use super::select::{MIN_POOL, POOL_FACTOR, boost, diversify, gather};
use super::shopper::ShopperEvents;
use crate::catalog::CatalogSnapshot;
use crate::privacy::{Consents, Personalization};
use attune_core::{TenantId, Timestamp};
use attune_store::{Store, StoreResult};

/// Computes one recommendation list under `rules` with `model`, checking items against `catalog`, and says
/// whether it used the shopper's history (only with their consent). Reads the shopper's consent and latest events
/// from the store: call on a blocking thread.
pub fn recommend(
    store: &dyn Store,
    consents: &Consents,
    tenant: &TenantId,
    model: &RecsModel,
    catalog: &CatalogSnapshot,
    request: &ListRequest,
    rules: &Rules,
) -> StoreResult<(Vec<Recommended>, Personalization)> {
    let user = match &request.basis {
        Basis::ForYou(user) => user.as_ref(),
        _ => None,
    };
    let whose = user.or(rules.shopper.user.as_ref());
    let personalization = consents.personalization(tenant, whose, rules.shopper.anonymous.as_ref())?;
    let shopper = match personalization {
        Personalization::Personalized => ShopperEvents::load(store, tenant, user, &rules.shopper)?,
        Personalization::NotPersonalized(_) => ShopperEvents::none(),
    };
    let now_ms = Timestamp::now().millis();
    let reranks = !rules.boosts.is_empty() || rules.max_per_category.is_some() || rules.mmr_lambda.is_some();
    let target = if reranks { (request.count * POOL_FACTOR).max(MIN_POOL) } else { request.count };
    let content = catalog.content();
    // Sources first offer what a list usually needs; when a filter rejects so many that the list comes out
    // short, they are asked again for all they have.
    let mut wide = false;
    let (plan, picked) = loop {
        let plan = plan(model, Some(content), request, rules, &shopper, now_ms, Depth { wanted: target, wide });
        let mut pool = gather(model, catalog, &plan, request, rules, target);
        boost(model, &mut pool, &rules.boosts);
        let picked = diversify(model, pool, request.count, rules);
        if picked.len() >= request.count || wide || rules.filter.is_none() {
            break (plan, picked);
        }
        wide = true;
    };
    Ok((explain(model, catalog, picked, &plan.touch, now_ms), personalization))
}
