//! `regency.toml`: the regency's name and zone, its named stores, and the
//! defaults each data group's PDs inherit.
//!
//! ```toml
//! name = "Kabupaten Contoh"
//! zone = "Asia/Makassar"
//!
//! [stores.pusat-data]
//! site = "onsite"
//! [stores.drc]
//! site = "dr"
//!
//! [defaults.all]
//! rpo = "26h"
//! [defaults.keuangan.retention]
//! daily = 14
//! ```

use std::collections::BTreeMap;

use toml::de::DeTable;

use crate::model::{DataGroup, Regency, Site, StoreRef};
use crate::reader::{Ctx, Table};
use crate::schedule::TIME_ZONES;
use crate::settings::{self, Env, Settings, SETTINGS_KEYS};
use crate::suggest;

const REGENCY_KEYS: [&str; 4] = ["name", "zone", "stores", "defaults"];

/// The key of `[defaults.all]`, which applies to every group.
pub(crate) const ALL_GROUPS: &str = "all";

/// The regency file, read.
pub(crate) struct RegencyFile {
    pub regency: Regency,
    /// `false` when `zone` was missing or wrong: schedules were then read
    /// in UTC, only to check their syntax.
    pub zone_ok: bool,
    /// `false` when the stores could not be read: store names are not
    /// checked against them.
    pub stores_ok: bool,
    /// `None` = `[defaults.all]`.
    pub defaults: BTreeMap<Option<DataGroup>, Settings>,
}

impl RegencyFile {
    pub fn env(&self) -> Env<'_> {
        Env {
            zone: if self.zone_ok {
                &self.regency.zone
            } else {
                "UTC"
            },
            stores: self.stores_ok.then_some(&self.regency.stores),
        }
    }
}

pub(crate) fn parse(
    cx: &mut Ctx,
    root: &DeTable,
    root_span: std::ops::Range<usize>,
) -> RegencyFile {
    let t = Table::new(root, root_span, "regency.toml");
    t.check_keys(cx, &REGENCY_KEYS);
    let name = t.required_string(cx, "name", "the regency's name, e.g. \"Kabupaten Contoh\"");
    let zone = zone(cx, &t);
    let stores = stores(cx, &t);
    let mut file = RegencyFile {
        regency: Regency {
            name: name.map(|n| n.value).unwrap_or_default(),
            zone: zone.clone().unwrap_or_else(|| "UTC".to_string()),
            stores: stores.clone().unwrap_or_default(),
        },
        zone_ok: zone.is_some(),
        stores_ok: stores.is_some(),
        defaults: BTreeMap::new(),
    };
    file.defaults = defaults(cx, &t, &file.env());
    file
}

fn zone(cx: &mut Ctx, t: &Table) -> Option<String> {
    let zone = t.required_string(
        cx,
        "zone",
        "Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT)",
    )?;
    if TIME_ZONES.contains(&zone.value.as_str()) {
        return Some(zone.value);
    }
    let hint = suggest::did_you_mean(&zone.value, TIME_ZONES).unwrap_or_else(|| {
        "use Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT)".to_string()
    });
    cx.error_hint(
        &zone.span,
        format!("unknown time zone `{}`", zone.value),
        hint,
    );
    None
}

fn stores(cx: &mut Ctx, t: &Table) -> Option<BTreeMap<String, StoreRef>> {
    let Some((table, _)) = t.table(cx, "stores") else {
        if t.value("stores").is_none() {
            cx.error_hint(
                &t.span,
                "regency.toml names no stores",
                "add an on-site and a DR store: [stores.pusat-data] site = \"onsite\" and [stores.drc] site = \"dr\"",
            );
        }
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        let Some(store) = value.get_ref().as_table() else {
            cx.error(
                &value.span(),
                format!("store `{name}` must be a table: [stores.{name}] site = \"onsite\""),
            );
            ok = false;
            continue;
        };
        let st = Table::new(store, value.span(), format!("[stores.{name}]"));
        check_store_keys(cx, &st);
        match store_site(cx, &st) {
            Some(site) => {
                out.insert(name.clone(), StoreRef { name, site });
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// Only `site` belongs here; anything else is most likely connection
/// detail that belongs in the controller's config.
fn check_store_keys(cx: &mut Ctx, st: &Table) {
    for key in st.table.keys() {
        let k = key.get_ref().as_ref();
        if k == "site" || crate::reader::is_credential_key(k) {
            continue;
        }
        let hint = suggest::did_you_mean(k, ["site"]).unwrap_or_else(|| {
            "a store here has only `site`; its URL, bucket and credentials go in the controller's config".to_string()
        });
        cx.error_hint(
            &key.span(),
            format!("unknown key `{k}` in {}", st.name),
            hint,
        );
    }
}

fn store_site(cx: &mut Ctx, st: &Table) -> Option<Site> {
    let site = st.required_string(cx, "site", "\"onsite\" or \"dr\"")?;
    match site.value.as_str() {
        "onsite" => Some(Site::OnSite),
        "dr" => Some(Site::Dr),
        other => {
            let hint = suggest::did_you_mean(other, ["onsite", "dr"]).unwrap_or_else(|| {
                "use \"onsite\" (the data center) or \"dr\" (the disaster-recovery site)"
                    .to_string()
            });
            cx.error_hint(
                &site.span,
                format!("unknown site `{other}` in {}", st.name),
                hint,
            );
            None
        }
    }
}

fn defaults(cx: &mut Ctx, t: &Table, env: &Env) -> BTreeMap<Option<DataGroup>, Settings> {
    let mut out = BTreeMap::new();
    let Some((table, _)) = t.table(cx, "defaults") else {
        return out;
    };
    let group_keys = || std::iter::once(ALL_GROUPS).chain(DataGroup::ALL.iter().map(|(_, k)| *k));
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        let group = if name == ALL_GROUPS {
            None
        } else if let Some(g) = DataGroup::from_key(name) {
            Some(g)
        } else {
            let hint = suggest::did_you_mean(name, group_keys()).unwrap_or_else(|| {
                format!(
                    "use `all` or a data group: {}",
                    group_keys().skip(1).collect::<Vec<_>>().join(", ")
                )
            });
            cx.error_hint(
                &key.span(),
                format!("unknown data group `{name}` in [defaults]"),
                hint,
            );
            continue;
        };
        let Some(defaults) = value.get_ref().as_table() else {
            cx.error(
                &value.span(),
                format!("[defaults.{name}] must be a table of PD settings"),
            );
            continue;
        };
        let dt = Table::new(defaults, value.span(), format!("[defaults.{name}]"));
        dt.check_keys(cx, &SETTINGS_KEYS);
        out.insert(group, settings::parse(cx, &dt, env));
    }
    out
}
