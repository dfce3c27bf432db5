//! A simulated disk that loses power (tests only), after redb's crash-consistency backend.
//!
//! A `kill -9` cannot catch a missing flush: the kernel's page cache survives the process and
//! writes the data out anyway. This backend keeps two maps instead: what the last completed
//! flush made durable, and what reads see. A countdown over write and flush calls picks the
//! moment power is lost. At that moment the durable map takes a random prefix of the batches
//! applied since the last flush (sled recovers some prefix of its writes, never a subset with
//! holes), and every later call fails, as the dead process would. [`Disk::recover`] then
//! gives the disk as the next boot finds it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, Batch, Db, Iter, Value};
use crate::error::Result;

type Map = BTreeMap<Vec<u8>, Arc<[u8]>>;

/// A disk whose power goes out at the `crash_at`-th write or flush call (1-based;
/// `u64::MAX`: never).
#[derive(Debug)]
pub(crate) struct Disk {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    durable: Map,
    live: Map,
    /// Batches applied since the last completed flush, in order.
    unflushed: Vec<Batch>,
    /// Write and flush calls left before the power goes (0: it went).
    countdown: u64,
    /// xorshift state for the prefix the crash keeps.
    rng: u64,
}

/// The error every call returns once the power is out.
fn power_lost() -> crate::error::Error {
    super::failed(std::io::Error::other("simulated power loss"))
}

fn apply_to(map: &mut Map, batch: &Batch) {
    for (k, v) in &batch.ops {
        match v {
            Some(v) => {
                map.insert(k.clone(), Arc::from(v.as_slice()));
            }
            None => {
                map.remove(k);
            }
        }
    }
}

impl Disk {
    /// An empty disk that loses power at call `crash_at`; `seed` picks what survives.
    pub(crate) fn new(crash_at: u64, seed: u64) -> Arc<Disk> {
        Disk::with(Map::new(), crash_at, seed)
    }

    fn with(durable: Map, crash_at: u64, seed: u64) -> Arc<Disk> {
        Arc::new(Disk {
            state: Mutex::new(State {
                live: durable.clone(),
                durable,
                unflushed: Vec::new(),
                countdown: crash_at.max(1),
                rng: seed | 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle for a store to open.
    pub(crate) fn db(self: &Arc<Self>) -> Db {
        Db::new(Box::new(Handle(self.clone())))
    }

    /// Whether the power went out.
    pub(crate) fn crashed(&self) -> bool {
        self.lock().countdown == 0
    }

    /// The disk as the next boot finds it (what was durable when the power went, or now if
    /// it has not gone), losing power again at call `crash_at`.
    pub(crate) fn recover(&self, crash_at: u64, seed: u64) -> Arc<Disk> {
        let mut s = self.lock();
        if s.countdown > 0 {
            s.crash();
        }
        Disk::with(s.durable.clone(), crash_at, seed)
    }
}

impl State {
    /// Count one write or flush call; `false` when the power is (now) out.
    fn tick(&mut self) -> bool {
        match self.countdown {
            0 => false,
            1 => {
                self.crash();
                false
            }
            _ => {
                self.countdown -= 1;
                true
            }
        }
    }

    fn crash(&mut self) {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let keep = (self.rng % (self.unflushed.len() as u64 + 1)) as usize;
        for b in self.unflushed.drain(..).take(keep) {
            apply_to(&mut self.durable, &b);
        }
        self.unflushed.clear();
        self.countdown = 0;
    }
}

struct Handle(Arc<Disk>);

impl Backend for Handle {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        let s = self.0.lock();
        if s.countdown == 0 {
            return Err(power_lost());
        }
        Ok(s.live.get(key).map(|v| Value::shared(v.clone())))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Iter<'static> {
        let s = self.0.lock();
        if s.countdown == 0 {
            return Box::new(std::iter::once(Err(power_lost())));
        }
        // A copy: the store never relies on a scan seeing writes made during it.
        let pairs: Vec<_> = s
            .live
            .range(start.to_vec()..)
            .take_while(|(k, _)| end.is_none_or(|e| k.as_slice() < e))
            .map(|(k, v)| {
                Ok((
                    Value::shared(Arc::from(k.as_slice())),
                    Value::shared(v.clone()),
                ))
            })
            .collect();
        Box::new(pairs.into_iter())
    }

    fn apply(&self, batch: Batch) -> Result<()> {
        let mut s = self.0.lock();
        if !s.tick() {
            return Err(power_lost());
        }
        apply_to(&mut s.live, &batch);
        s.unflushed.push(batch);
        Ok(())
    }

    fn compare_and_swap(&self, key: &[u8], old: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
        let mut s = self.0.lock();
        if !s.tick() {
            return Err(power_lost());
        }
        if s.live.get(key).map(|v| &v[..]) != old {
            return Ok(false);
        }
        let mut b = Batch::default();
        match new {
            Some(v) => b.insert(key, v),
            None => b.remove(key),
        }
        apply_to(&mut s.live, &b);
        s.unflushed.push(b);
        Ok(true)
    }

    fn flush(&self) -> Result<()> {
        let mut s = self.0.lock();
        if !s.tick() {
            return Err(power_lost());
        }
        let unflushed = std::mem::take(&mut s.unflushed);
        for b in &unflushed {
            apply_to(&mut s.durable, b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_survives_is_the_flushed_state_plus_a_prefix_of_later_batches() {
        for seed in 1..200u64 {
            let disk = Disk::new(u64::MAX, seed);
            let db = disk.db();
            db.insert(b"a", b"1".to_vec()).expect("write");
            db.flush().expect("flush");
            for i in 0..5u8 {
                db.insert([b'k', i], vec![i]).expect("write");
            }
            let after = disk.recover(u64::MAX, 1).db();
            assert_eq!(after.get(b"a").expect("read").as_deref(), Some(&b"1"[..]));
            let kept: Vec<u8> = (0..5u8)
                .filter(|i| after.get([b'k', *i]).expect("read").is_some())
                .collect();
            assert_eq!(
                kept,
                (0..kept.len() as u8).collect::<Vec<_>>(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn every_call_fails_once_the_power_is_out() {
        let disk = Disk::new(3, 7);
        let db = disk.db();
        db.insert(b"a", b"1".to_vec()).expect("write 1");
        db.flush().expect("flush 2");
        assert!(
            db.insert(b"b", b"2".to_vec()).is_err(),
            "call 3 loses power"
        );
        assert!(disk.crashed());
        assert!(db.get(b"a").is_err());
        assert!(db.flush().is_err());
        let after = disk.recover(u64::MAX, 1).db();
        assert!(after.get(b"a").expect("read").is_some());
        assert!(after.get(b"b").expect("read").is_none());
    }
}
