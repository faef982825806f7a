//! Per-thread, per-base-scalar recording state for engines, with a fast path for the one
//! that is recording.

/// Declares, in the calling module, this thread's recording state of type `$state<S>` for every
/// base scalar `S: Real` (one owner for `f64`, a registry for the others), and the functions
/// an engine uses to reach it:
///
/// * `$with(f)` runs `f(&mut $state<S>)`; on the recording state it is one thread-local load,
///   so per-op closures inline into user code.
/// * `with_owner(f)` / `try_with_owner(f)` give the owner's `RefCell` (`try_` returns `None`
///   when the thread is exiting).
/// * `set_recording(Some(cell))` when a recording begins, `set_recording::<S>(None)` before it
///   ends.
///
/// # Safety
///
/// The invocation is written `per_thread_state!(unsafe State, with = ...)`: by it the engine
/// promises that every closure it gives to `$with` only moves data. Such a closure runs no
/// user code (a rule's `clone`, a user iterator, a `Drop` of user data) and nothing that
/// reaches this state again (`$with`, `with_owner`), and no borrow from `with_owner` is held
/// around user code. Release builds rely on this and skip the `RefCell` flag on the hot path;
/// debug builds, which run the test suites, check it (a re-entrant call panics).
///
/// `$state<S>` needs `const fn new() -> Self`. Going through `LocalKey::with` on every scalar
/// op kept the op out of line and cost the tape engine about 20 ns per node (Rosenbrock,
/// n = 1000); this is what every engine's hot path uses instead.
///
/// ```
/// use difi_core::Real;
///
/// struct Log<S> {
///     values: Vec<S>,
/// }
/// impl<S: Real> Log<S> {
///     const fn new() -> Self {
///         Log { values: Vec::new() }
///     }
/// }
/// // Safety: the closures given to `with_log` below only move data.
/// difi_core::per_thread_state!(unsafe Log, with = with_log);
///
/// // A recording begins: cache this thread's state for f64, record, and forget it before the
/// // recording ends.
/// with_owner::<f64, _>(|cell| set_recording(Some(cell)));
/// with_log::<f64, _>(|log| log.values.push(1.5));
/// with_log::<f64, _>(|log| log.values.push(2.5));
/// set_recording::<f64>(None);
/// assert_eq!(with_log::<f64, _>(|log| log.values.clone()), vec![1.5, 2.5]);
/// // Other base scalars have their own state.
/// assert!(with_log::<f32, _>(|log| log.values.is_empty()));
/// ```
#[macro_export]
macro_rules! per_thread_state {
    (unsafe $state:ident, with = $with:ident) => {
        ::std::thread_local! {
            static STATE_F64: ::std::cell::RefCell<$state<f64>> =
                const { ::std::cell::RefCell::new($state::new()) };
            static STATES: ::std::cell::RefCell<
                ::std::vec::Vec<(::std::any::TypeId, ::std::boxed::Box<dyn ::std::any::Any>)>,
            > = const { ::std::cell::RefCell::new(::std::vec::Vec::new()) };
            /// The f64 state while it records (null otherwise), and the last non-f64 state
            /// that began recording. Plain `Cell`s have no destructor: reading one is a load.
            static RECORDING_F64: ::std::cell::Cell<*const ::std::cell::RefCell<$state<f64>>> =
                const { ::std::cell::Cell::new(::std::ptr::null()) };
            static RECORDING_OTHER: ::std::cell::Cell<(
                ::std::option::Option<::std::any::TypeId>,
                *const (),
            )> = const { ::std::cell::Cell::new((None, ::std::ptr::null())) };
            /// Non-f64 recordings that began before the cached one and still run: when the
            /// cached one ends, the one below it becomes the cached one again (nested
            /// recordings at two non-f64 bases, e.g. three levels of nesting, stay fast).
            static RECORDING_BELOW: ::std::cell::RefCell<
                ::std::vec::Vec<(::std::any::TypeId, *const ())>,
            > = const { ::std::cell::RefCell::new(::std::vec::Vec::new()) };
        }

        /// This thread's state for `S` if it is recording and cached.
        #[inline(always)]
        fn recording_cell<S: $crate::Real>() -> Option<*const ::std::cell::RefCell<$state<S>>> {
            use ::std::any::TypeId;
            if TypeId::of::<S>() == TypeId::of::<f64>() {
                let p = RECORDING_F64.with(::std::cell::Cell::get);
                (!p.is_null()).then_some(p as *const ::std::cell::RefCell<$state<S>>)
            } else {
                let (id, p) = RECORDING_OTHER.with(::std::cell::Cell::get);
                (id == Some(TypeId::of::<S>()))
                    .then_some(p as *const ::std::cell::RefCell<$state<S>>)
            }
        }

        /// Runs `f` on this thread's state for base scalar `S`; `f` only moves data.
        #[inline(always)]
        pub(crate) fn $with<S: $crate::Real, R>(f: impl FnOnce(&mut $state<S>) -> R) -> R {
            // One call site for `f`, so the per-op closures inline into user code.
            let cell = recording_cell::<S>().unwrap_or_else(owner_cell::<S>);
            // SAFETY: `cell` points at this thread's owner of the state for `S`: `STATE_F64`,
            // or the pointee of an `Rc` that `STATES` holds until thread exit, which never
            // moves. Either is destroyed only when the thread exits, and no thread-local
            // destructor can run between taking the pointer (from the live owner: through
            // `LocalKey::with` in `owner_cell`, or when the recording began, with
            // `set_recording(None)` before it ends) and this use. The `TypeId` checks make the
            // casts identities.
            let cell = unsafe { &*cell };
            #[cfg(debug_assertions)]
            let result = f(&mut cell.borrow_mut());
            // SAFETY: no other reference to the state exists while `f` runs. Other references
            // come only from this function and from `with_owner`; by the invocation's promise
            // (see the macro's Safety section) `f` only moves data, so it reaches neither, nor
            // user code that could, and no `with_owner` borrow is held around user code, so
            // none is live on entry. Debug builds check exactly this with the `RefCell` flag
            // above. Skipping the flag here is a tenth of a scalar op on the tape
            // (Rosenbrock n = 1000: 39 -> 35 us).
            #[cfg(not(debug_assertions))]
            let result = f(unsafe { &mut *cell.as_ptr() });
            result
        }

        /// The owner of this thread's state for `S`, off the hot path.
        #[cold]
        #[inline(never)]
        fn owner_cell<S: $crate::Real>() -> *const ::std::cell::RefCell<$state<S>> {
            with_owner::<S, _>(|cell| cell as *const ::std::cell::RefCell<$state<S>>)
        }

        /// Runs `f` on this thread's owner of the state for `S`, creating it on first use;
        /// `None` when the thread is exiting and its states are gone.
        #[allow(dead_code)]
        fn try_with_owner<S: $crate::Real, R>(
            f: impl FnOnce(&::std::cell::RefCell<$state<S>>) -> R,
        ) -> Option<R> {
            use ::std::any::{Any, TypeId};
            use ::std::cell::RefCell;
            use ::std::rc::Rc;
            if TypeId::of::<S>() == TypeId::of::<f64>() {
                STATE_F64
                    .try_with(|t| {
                        let t: &dyn Any = t;
                        f(t.downcast_ref::<RefCell<$state<S>>>()
                            .expect("TypeId matched"))
                    })
                    .ok()
            } else {
                // The registry's borrow ends before `f` runs: `f` may reach other types' states.
                let cell = STATES
                    .try_with(|m| {
                        let mut m = m.try_borrow_mut().ok()?;
                        let id = TypeId::of::<S>();
                        let pos = match m.iter().position(|(t, _)| *t == id) {
                            Some(p) => p,
                            None => {
                                m.push((id, Box::new(Rc::new(RefCell::new($state::<S>::new())))));
                                m.len() - 1
                            }
                        };
                        m[pos].1.downcast_ref::<Rc<RefCell<$state<S>>>>().cloned()
                    })
                    .ok()
                    .flatten()?;
                Some(f(&cell))
            }
        }

        /// [`try_with_owner`], panicking when the thread's states are gone.
        fn with_owner<S: $crate::Real, R>(
            f: impl FnOnce(&::std::cell::RefCell<$state<S>>) -> R,
        ) -> R {
            try_with_owner(f).expect("difi: this thread's recording state is already destroyed")
        }

        /// Caches (with `None`: forgets) the state for `S` as the recording one.
        fn set_recording<S: $crate::Real>(cell: Option<&::std::cell::RefCell<$state<S>>>) {
            use ::std::any::TypeId;
            let p = cell.map_or(::std::ptr::null(), |c| {
                c as *const ::std::cell::RefCell<$state<S>>
            });
            if TypeId::of::<S>() == TypeId::of::<f64>() {
                RECORDING_F64.with(|r| r.set(p as *const ::std::cell::RefCell<$state<f64>>));
            } else {
                let id = TypeId::of::<S>();
                let below = |f: &mut dyn FnMut(&mut ::std::vec::Vec<(TypeId, *const ())>)| {
                    let _ = RECORDING_BELOW.try_with(|b| {
                        if let Ok(mut b) = b.try_borrow_mut() {
                            f(&mut b)
                        }
                    });
                };
                RECORDING_OTHER.with(|r| match cell {
                    Some(_) => {
                        if let (Some(t), q) = r.get() {
                            below(&mut |b| b.push((t, q)));
                        }
                        r.set((Some(id), p as *const ()));
                    }
                    // Ours ends: forget it first (whatever else fails), then the recording
                    // below it, still running, is cached again.
                    None if r.get().0 == Some(id) => {
                        r.set((None, ::std::ptr::null()));
                        below(&mut |b| {
                            if let Some((t, q)) = b.pop() {
                                r.set((Some(t), q));
                            }
                        });
                    }
                    // Another type is cached: ours is somewhere below it.
                    None => below(&mut |b| b.retain(|(t, _)| *t != id)),
                });
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::Real;

    pub(crate) struct Counter<S> {
        seen: Vec<S>,
    }
    impl<S: Real> Counter<S> {
        const fn new() -> Self {
            Counter { seen: Vec::new() }
        }
    }
    // Safety: the closures below only move data (but for the re-entrant one, which debug
    // builds catch).
    crate::per_thread_state!(unsafe Counter, with = with_counter);

    /// Release builds trust the engines' closures not to re-enter (they skip the borrow flag);
    /// debug builds, which run the test suites, check it.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "already")]
    fn a_reentrant_access_panics_in_debug_builds() {
        with_counter::<f64, _>(|c| {
            c.seen.push(1.0);
            with_counter::<f64, _>(|inner| inner.seen.push(2.0));
        });
    }

    #[test]
    fn the_recording_state_and_the_owner_are_one_state() {
        with_owner::<f64, _>(|cell| set_recording(Some(cell)));
        with_counter::<f64, _>(|c| c.seen.push(1.0));
        set_recording::<f64>(None);
        with_counter::<f64, _>(|c| c.seen.push(2.0));
        with_owner::<f64, _>(|cell| assert_eq!(cell.borrow().seen, vec![1.0, 2.0]));
        // Another base scalar has its own state, reached the same two ways.
        with_owner::<f32, _>(|cell| set_recording(Some(cell)));
        with_counter::<f32, _>(|c| c.seen.push(3.0));
        set_recording::<f32>(None);
        with_owner::<f32, _>(|cell| assert_eq!(cell.borrow().seen, vec![3.0]));
    }
}
