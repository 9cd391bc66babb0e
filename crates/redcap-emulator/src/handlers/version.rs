//! Export Version (spec/version.toml).

use super::{Ctx, HResult, Reply};

/// Export Version (project token: needs API Export).
pub fn export(ctx: &mut Ctx) -> HResult {
    ctx.need_export()?;
    Ok(Reply::text(ctx.env.version.clone()))
}
