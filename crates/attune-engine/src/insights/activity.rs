//! What one customer did overall, from their whole timeline: orders, units, revenue and returns per currency,
//! when they were first and last seen, on which channels, and what they bought most.

use attune_core::{Channel, Currency, EventKind, ItemId, TenantId, Timestamp, UserId};
use attune_store::{Store, StoreResult, TimelineQuery};
use std::collections::{BTreeMap, HashMap};

/// Timeline events read per store call.
const PAGE: usize = 1_000;
/// Items listed as bought most.
const TOP_ITEMS: usize = 5;

/// A customer's activity summary.
#[derive(Debug, Default)]
pub struct CustomerActivity {
    /// Events summarised.
    pub events: u64,
    /// Whether the timeline had more events than were read.
    pub capped: bool,
    pub orders: u64,
    pub units: u64,
    /// Revenue per currency, in minor units.
    pub revenue: BTreeMap<Currency, i64>,
    pub returns: u64,
    /// Returned value per currency, in minor units.
    pub returned: BTreeMap<Currency, i64>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// Events per channel.
    pub channels: HashMap<Channel, u64>,
    /// Items by units bought, most first.
    pub top_items: Vec<(ItemId, u64)>,
}

impl CustomerActivity {
    /// Summarises the newest `cap` events (at least) of `user`'s timeline. Blocking.
    pub fn read(store: &dyn Store, tenant: &TenantId, user: &UserId, cap: usize) -> StoreResult<Self> {
        let mut summary = Self::default();
        let mut bought: HashMap<ItemId, u64> = HashMap::new();
        let mut cursor = None;
        loop {
            let page = store.user_timeline(tenant, user, &TimelineQuery { before_seq: cursor, limit: PAGE })?;
            for stored in &page.events {
                summary.add(&stored.event, &mut bought);
            }
            match page.next_before_seq {
                Some(next) if (summary.events as usize) < cap => cursor = Some(next),
                Some(_) => {
                    summary.capped = true;
                    break;
                }
                None => break,
            }
        }
        let mut top: Vec<(ItemId, u64)> = bought.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(TOP_ITEMS);
        summary.top_items = top;
        Ok(summary)
    }

    fn add(&mut self, event: &attune_core::Event, bought: &mut HashMap<ItemId, u64>) {
        self.events += 1;
        self.first_seen = Some(self.first_seen.map_or(event.timestamp, |t| t.min(event.timestamp)));
        self.last_seen = Some(self.last_seen.map_or(event.timestamp, |t| t.max(event.timestamp)));
        *self.channels.entry(event.channel).or_default() += 1;
        match &event.kind {
            EventKind::Purchase { lines, .. } => {
                self.orders += 1;
                for line in lines {
                    self.units += u64::from(line.quantity);
                    *self.revenue.entry(line.unit_price.currency).or_default() += line.total_minor_units();
                    *bought.entry(line.item_id.clone()).or_default() += u64::from(line.quantity);
                }
            }
            EventKind::Return { lines, .. } => {
                self.returns += 1;
                for line in lines {
                    *self.returned.entry(line.unit_price.currency).or_default() += line.total_minor_units();
                }
            }
            _ => {}
        }
    }
}
