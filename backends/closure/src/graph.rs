//! The per-thread pullback graph: an arena of pullbacks, composed in reverse.

use std::any::{Any, TypeId};
use std::cell::RefCell;
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

pub(crate) enum Entry<S: Real> {
    /// An active input: nothing to pull back further.
    Input,
    Scalar {
        pullback: ScalarPullback<S>,
        operands: [u32; 2],
        captured: [S; 2],
    },
    /// An array pullback; its `outputs` output slots follow it.
    Array { pullback: usize, outputs: usize },
    /// An output slot of the array pullback `owner`.
    Output,
}

pub(crate) struct Graph<S: Real> {
    pub epoch: u32,
    pub recording: bool,
    pub max_entries: usize,
    pub entries: Vec<Entry<S>>,
    pub arrays: Vec<ArrayPullback<S>>,
    pub error: Option<Error>,
}

impl<S: Real> Graph<S> {
    pub const fn new() -> Self {
        Graph {
            epoch: 0,
            recording: false,
            max_entries: u32::MAX as usize - 1,
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

    #[inline]
    pub fn push(&mut self, e: Entry<S>) -> u32 {
        let id = self.entries.len();
        if id >= self.max_entries {
            self.fail(Error::TapeOverflow {
                capacity: self.max_entries,
            });
            return NO_ID;
        }
        self.entries.push(e);
        id as u32
    }
}

thread_local! {
    static GRAPH_F64: RefCell<Graph<f64>> = const { RefCell::new(Graph::new()) };
    static GRAPHS: RefCell<Vec<(TypeId, Box<dyn Any>)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's graph for base scalar `S`; `f` only moves data.
#[inline(always)]
pub(crate) fn with_graph<S: Real, R>(f: impl FnOnce(&mut Graph<S>) -> R) -> R {
    if TypeId::of::<S>() == TypeId::of::<f64>() {
        GRAPH_F64.with(|g| {
            let mut g = g.borrow_mut();
            let g: &mut dyn Any = &mut *g;
            f(g.downcast_mut::<Graph<S>>().expect("TypeId matched"))
        })
    } else {
        GRAPHS.with(|m| {
            let mut m = m.borrow_mut();
            let id = TypeId::of::<S>();
            let pos = match m.iter().position(|(t, _)| *t == id) {
                Some(p) => p,
                None => {
                    m.push((id, Box::new(Graph::<S>::new())));
                    m.len() - 1
                }
            };
            f(m[pos].1.downcast_mut::<Graph<S>>().expect("TypeId matched"))
        })
    }
}

static NEXT_EPOCH: AtomicU32 = AtomicU32::new(1);

/// A running recording; ends it on drop so a panic in user code leaves the thread usable.
pub(crate) struct Recording<S: Real> {
    pub epoch: u32,
    open: bool,
    _s: std::marker::PhantomData<S>,
}

impl<S: Real> Recording<S> {
    pub fn begin(max_entries: usize) -> Result<Self> {
        with_graph::<S, _>(|g| {
            if g.recording {
                return Err(Error::TracerMisuse(format!(
                    "a recording over {} is already running on this thread",
                    std::any::type_name::<S>()
                )));
            }
            let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed).max(1);
            *g = Graph::new();
            g.epoch = epoch;
            g.recording = true;
            g.max_entries = max_entries;
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
    with_graph::<S, _>(|g| {
        let mut out = std::mem::replace(g, Graph::new());
        out.recording = false;
        out
    })
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
        match &graph.entries[i] {
            Entry::Input | Entry::Output => {}
            Entry::Scalar {
                pullback,
                operands,
                captured,
            } => {
                let needed = [operands[0] != NO_ID, operands[1] != NO_ID];
                let cts = pullback(captured, adj[i], needed);
                for k in 0..2 {
                    if needed[k] {
                        adj[operands[k] as usize] += cts[k];
                    }
                }
            }
            Entry::Array { pullback, outputs } => {
                let (head, tail) = adj.split_at_mut(i + 1);
                graph.arrays[*pullback](&tail[..*outputs], head)?;
            }
        }
    }
    Ok(())
}
