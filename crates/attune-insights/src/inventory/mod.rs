//! Inventory policy from a demand forecast: safety stock for a target service level, reorder point,
//! order-up-to level, days of cover, stockout risk and an overstock flag per item ([`policy`]), and a
//! reorder suggestion list across items ([`reorder`]).

pub mod policy;
pub mod reorder;

pub use policy::{InventoryPolicy, LeadTime, OrderRules, PolicySettings, StockPosition, inventory_policy};
pub use reorder::{ItemStock, ReorderSuggestion, reorder_suggestions};
