//! The environment where nothing of it is looked up yet (Windows): every answer is `None`.

use std::path::Path;

pub fn os_name() -> Option<String> {
    None
}

pub fn kernel() -> Option<String> {
    None
}

pub fn filesystem(_dir: &Path) -> Option<String> {
    None
}
