//! Where the controller gets its policy set from: one function, so the
//! loader can be swapped (tests give their own) and the daemon never cares
//! how files become a [`PolicySet`].

use std::path::Path;
use std::sync::Arc;

use cadang_policies::model::PolicySet;

/// Loads the policy set in a directory, or every located error in it
/// (`file:line:column: message`, rendered for people).
pub type PolicyLoader = Arc<dyn Fn(&Path) -> Result<PolicySet, Vec<String>> + Send + Sync>;

/// The policies crate's loader.
pub fn files_loader() -> PolicyLoader {
    Arc::new(load_dir)
}

pub fn load_dir(dir: &Path) -> Result<PolicySet, Vec<String>> {
    cadang_policies::load_dir(dir).map_err(|diags| diags.iter().map(|d| d.to_string()).collect())
}
