//! A small per-instance cache: bounded (the oldest entry goes first when it is full, so an
//! instance's memory stays flat) and with a time to live. Only for values that are safe to lose
//! or to read a little stale.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct TtlCache<K, V> {
    capacity: usize,
    ttl: Duration,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        TtlCache {
            capacity,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            // Expired entries go first; otherwise the oldest. A scan is fine at these sizes.
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_out_and_expiring() {
        let cache = TtlCache::new(2, Duration::from_secs(60));
        cache.put("a", 1);
        std::thread::sleep(Duration::from_millis(2));
        cache.put("b", 2);
        cache.put("c", 3);
        assert_eq!(cache.get(&"a"), None, "the oldest went first");
        assert_eq!((cache.get(&"b"), cache.get(&"c")), (Some(2), Some(3)));
        cache.put("c", 4);
        assert_eq!(cache.get(&"b"), Some(2), "replacing a key evicts nothing");

        let short = TtlCache::new(2, Duration::from_millis(1));
        short.put("a", 1);
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.get(&"a"), None);
    }
}
