//! Pagination: every list is bounded. A page token is the opaque (base64url) store key of the last item returned;
//! the next page starts after it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::ops::ControlFlow;

use crate::error::DomainError;
use crate::store::Store;

/// A validated page request.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Items wanted, between 1 and the configured maximum.
    pub size: usize,
    /// Resume after this store key.
    pub after: Option<Vec<u8>>,
}

/// Page size limits from configuration (`[limits]`).
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub size_default: usize,
    pub size_max: usize,
}

impl PageRequest {
    /// Validates `page_size` (0 means the default; above the maximum is lowered to it, as AIP-158 advises; negative
    /// is refused) and decodes `page_token`.
    pub fn parse(page_size: i32, page_token: &str, limits: PageLimits) -> Result<Self, DomainError> {
        let size = match page_size {
            size if size < 0 => {
                return Err(DomainError::invalid("page_size", "must not be negative"));
            }
            0 => limits.size_default,
            size => (size as usize).min(limits.size_max),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(
                URL_SAFE_NO_PAD
                    .decode(page_token)
                    .ok()
                    .filter(|key| key.len() <= 512)
                    .ok_or_else(|| DomainError::invalid("page_token", "is not a token this node issued"))?,
            )
        };
        Ok(Self { size: size.max(1), after })
    }

    /// Checks that the token belongs to a scan of `prefix` (a token from another list is refused).
    pub fn check_prefix(&self, prefix: &str) -> Result<(), DomainError> {
        match &self.after {
            Some(after) if !after.starts_with(prefix.as_bytes()) => {
                Err(DomainError::invalid("page_token", "belongs to another list or query"))
            }
            _ => Ok(()),
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// `last_key` is the key of the last item if more items follow.
    pub fn new(items: Vec<T>, last_key: Option<Vec<u8>>) -> Self {
        Self { items, next_page_token: last_key.map(|key| URL_SAFE_NO_PAD.encode(key)).unwrap_or_default() }
    }
}

/// Scans `prefix` from the page token on, keeping the items `select` returns (`Ok(None)` skips an entry), until
/// the page is full; the one pagination loop every list shares.
pub fn collect<T>(
    store: &dyn Store,
    prefix: &str,
    page: &PageRequest,
    mut select: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, DomainError>,
) -> Result<Page<T>, DomainError> {
    page.check_prefix(prefix)?;
    let mut items = Vec::new();
    let mut last_key = None;
    let mut more = false;
    let mut failure = None;
    store.scan(prefix.as_bytes(), page.after.as_deref(), &mut |key, value| match select(key, value) {
        Ok(None) => ControlFlow::Continue(()),
        Ok(Some(item)) => {
            if items.len() == page.size {
                more = true;
                return ControlFlow::Break(());
            }
            last_key = Some(key.to_vec());
            items.push(item);
            ControlFlow::Continue(())
        }
        Err(error) => {
            failure = Some(error);
            ControlFlow::Break(())
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(Page::new(items, if more { last_key } else { None }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PageLimits = PageLimits { size_default: 50, size_max: 500 };

    #[test]
    fn page_sizes_default_clamp_and_refuse_negatives() {
        assert_eq!(PageRequest::parse(0, "", LIMITS).unwrap().size, 50);
        assert_eq!(PageRequest::parse(7, "", LIMITS).unwrap().size, 7);
        assert_eq!(PageRequest::parse(i32::MAX, "", LIMITS).unwrap().size, 500);
        assert!(PageRequest::parse(-1, "", LIMITS).is_err());
    }

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        let page = Page::new(vec![1], Some(b"vol/330106-00000001".to_vec()));
        let request = PageRequest::parse(10, &page.next_page_token, LIMITS).unwrap();
        assert_eq!(request.after.as_deref(), Some(&b"vol/330106-00000001"[..]));
        assert!(request.check_prefix("vol/").is_ok());
        assert!(request.check_prefix("team/").is_err());
        assert!(PageRequest::parse(10, "!!!", LIMITS).is_err());
        assert!(PageRequest::parse(10, &"A".repeat(2000), LIMITS).is_err());
    }
}
