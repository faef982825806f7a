//! The per-thread pullback graph: an arena of pullbacks, composed in reverse.

use std::sync::atomic::{AtomicU32, Ordering};

use difi_core::{Error, Real, Result};

/// The id of a tracer that has no pullback (a constant).
pub(crate) const NO_ID: u32 = u32::MAX;

/// A scalar primitive's pullback: cotangents of its (up to two) operands from the output
/// cotangent `g`, computed only where `needed`. A plain function pointer with its captures
/// stored beside it in the arena: no allocation per scalar operation.
pub(crate) type ScalarPullback<S> = fn(captured: &[S; 2], g: S, needed: [bool; 2]) -> [S; 2];

/// An array-level pullback (sum, dot, products, custom rules, hooks, checkpoints): output
/// cotangents in, operand cotangents added to `adj`. One boxed closure per array operation.
pub(crate) type ArrayPullback<S> = Box<dyn Fn(&[S], &mut [S]) -> Result<()> + Send>;

/// Marks an entry whose pullback is the array pullback `operands[1]` (its output slots follow).
pub(crate) const ARRAY_TAG: u32 = u32::MAX - 1;

/// Largest number of entries: ids stay below [`ARRAY_TAG`] and [`NO_ID`].
pub(crate) const MAX_ENTRIES: usize = ARRAY_TAG as usize;

/// One pullback in the arena: a scalar primitive's function pointer, its operands and its
/// captures (32 bytes for f64). Inputs and array output slots have no operands; an array
/// node's entry has `[ARRAY_TAG, index]`. A plain struct, not an enum: the reverse pass reads
/// a third fewer bytes per entry, and the one branch on the tag is well predicted.
#[derive(Clone, Copy)]
pub(crate) struct Entry<S> {
    pub pullback: ScalarPullback<S>,
    pub operands: [u32; 2],
    pub captured: [S; 2],
}

fn no_pullback<S: Real>(_: &[S; 2], _: S, _: [bool; 2]) -> [S; 2] {
    [S::zero(), S::zero()]
}

impl<S: Real> Entry<S> {
    /// An active input, or an output slot of an array pullback: nothing to pull back through.
    pub fn leaf() -> Self {
        Entry {
            pullback: no_pullback::<S>,
            operands: [NO_ID, NO_ID],
            captured: [S::zero(), S::zero()],
        }
    }

    /// The array pullback `index`.
    pub fn array(index: usize) -> Self {
        Entry {
            operands: [ARRAY_TAG, index as u32],
            ..Entry::leaf()
        }
    }

    /// A scalar primitive's pullback.
    pub fn is_scalar(&self) -> bool {
        self.operands[0] != ARRAY_TAG && self.operands != [NO_ID, NO_ID]
    }
}

pub(crate) struct Graph<S: Real> {
    pub epoch: u32,
    pub recording: bool,
    pub max_entries: usize,
    pub entries: Vec<Entry<S>>,
    /// Array pullbacks with their number of output slots.
    pub arrays: Vec<(ArrayPullback<S>, usize)>,
    pub error: Option<Error>,
}

impl<S: Real> Graph<S> {
    pub const fn new() -> Self {
        Graph {
            epoch: 0,
            recording: false,
            max_entries: MAX_ENTRIES,
            entries: Vec::new(),
            arrays: Vec::new(),
            error: None,
        }
    }

    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    #[inline(always)]
    pub fn push(&mut self, e: Entry<S>) -> u32 {
        let id = self.entries.len();
        if id >= self.max_entries {
            return self.overflow();
        }
        self.entries.push(e);
        id as u32
    }

    /// `n` leaves pushed in bulk (consecutive ids), or `NO_ID`s and the overflow error.
    pub fn push_leaves(&mut self, n: usize) -> Vec<u32> {
        let first = self.entries.len();
        if first + n > self.max_entries {
            return vec![self.overflow(); n];
        }
        self.entries
            .extend(std::iter::repeat_with(Entry::leaf).take(n));
        (first as u32..(first + n) as u32).collect()
    }

    #[cold]
    #[inline(never)]
    fn overflow(&mut self) -> u32 {
        self.fail(Error::TapeOverflow {
            capacity: self.max_entries,
        });
        NO_ID
    }
}

// Safety: every closure given to `with_graph` in this crate only moves data; user code (rule and
// segment clones, drops of leftover nodes) runs outside them.
difi_core::per_thread_state!(unsafe Graph, with = with_graph);

static NEXT_EPOCH: AtomicU32 = AtomicU32::new(1);

/// A running recording; ends it on drop so a panic in user code leaves the thread usable.
pub(crate) struct Recording<S: Real> {
    pub epoch: u32,
    open: bool,
    _s: std::marker::PhantomData<S>,
}

impl<S: Real> Recording<S> {
    pub fn begin(max_entries: usize) -> Result<Self> {
        with_owner::<S, _>(|cell| {
            let mut g = cell.borrow_mut();
            if g.recording {
                return Err(Error::TracerMisuse(format!(
                    "a recording over {} is already running on this thread",
                    std::any::type_name::<S>()
                )));
            }
            let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed).max(1);
            // Keep the buffers a dropped pullback gave back: no allocation, no page faults.
            g.entries.clear();
            // Array pullbacks hold user rules: any left are dropped after the borrow ends, so
            // no user code runs while the graph is borrowed (`with_graph` relies on it).
            let stale: Vec<_> = g.arrays.drain(..).collect();
            g.error = None;
            g.epoch = epoch;
            g.recording = true;
            g.max_entries = max_entries;
            drop(g);
            drop(stale);
            set_recording(Some(cell));
            Ok(Recording {
                epoch,
                open: true,
                _s: std::marker::PhantomData,
            })
        })
    }

    pub fn finish(mut self) -> Graph<S> {
        self.open = false;
        take::<S>()
    }
}

fn take<S: Real>() -> Graph<S> {
    with_owner::<S, _>(|cell| {
        set_recording::<S>(None);
        let mut out = std::mem::replace(&mut *cell.borrow_mut(), Graph::new());
        out.recording = false;
        out
    })
}

/// Gives a finished graph's buffers back to this thread for the next recording at `S`, unless
/// one is running or the thread is exiting.
pub(crate) fn recycle<S: Real>(mut graph: Graph<S>) {
    graph.entries.clear();
    graph.arrays.clear();
    try_with_owner::<S, _>(|cell| {
        if let Ok(mut g) = cell.try_borrow_mut() {
            if !g.recording && g.entries.capacity() < graph.entries.capacity() {
                std::mem::swap(&mut g.entries, &mut graph.entries);
                std::mem::swap(&mut g.arrays, &mut graph.arrays);
            }
        }
    });
}

impl<S: Real> Drop for Recording<S> {
    fn drop(&mut self) {
        if self.open {
            take::<S>();
        }
    }
}

/// Composes the pullbacks in reverse: `adj` holds seeds on entry, all cotangents on exit.
pub(crate) fn pull_back<S: Real>(graph: &Graph<S>, adj: &mut [S]) -> Result<()> {
    for i in (0..graph.entries.len()).rev() {
        let Entry {
            pullback,
            operands,
            captured,
        } = &graph.entries[i];
        if operands[0] == ARRAY_TAG {
            let (pullback, outputs) = &graph.arrays[operands[1] as usize];
            let (head, tail) = adj.split_at_mut(i + 1);
            pullback(&tail[..*outputs], head)?;
            continue;
        }
        let needed = [operands[0] != NO_ID, operands[1] != NO_ID];
        // Off every seeded output's path: nothing to add, even where a partial is infinite.
        if needed == [false, false] || adj[i].is_exact_zero() {
            continue;
        }
        let cts = pullback(captured, adj[i], needed);
        for k in 0..2 {
            if needed[k] {
                adj[operands[k] as usize] += cts[k];
            }
        }
    }
    Ok(())
}
