//! Every mutant: its name, its bug, the sentences of `spec/SPEC.md` it breaks, and the scenarios
//! that must reject it. `docs/mutants.md` is rendered from this table (`tests/mutants/`).

use super::{Break, Flaw, Kind, Mutant};

/// Every mutant, in the order of the rules they break.
pub static CATALOGUE: &[Mutant] = &[
    Mutant {
        name: "other-thread-passes",
        bug: "an acquire through a second object of the holding process succeeds at once from any other thread than the holder's",
        kind: Kind::Model(Flaw::OtherThreadPasses),
        breaks: &[Break {
            rule: "IDN-1",
            clause: "MUST NOT succeed: it waits or fails as its timeout says",
            caught_by: &["identity::two_objects_two_threads"],
        }],
    },
    Mutant {
        name: "per-process-record-lock",
        bug: "whole-file `fcntl` record locks on a descriptor per object and no table of locks in the process: objects of one process never exclude each other, and closing any descriptor on the file drops the lock",
        kind: Kind::PerProcessRecordLock,
        breaks: &[
            Break {
                rule: "IDN-1",
                clause: "MUST NOT succeed: it waits or fails as its timeout says",
                caught_by: &["identity::two_objects_two_threads"],
            },
            Break {
                rule: "FIL-3",
                clause: "in the holding process MUST NOT release the lock",
                caught_by: &["file::plain_handle_closed_in_holder"],
            },
        ],
    },
    Mutant {
        name: "process-local",
        bug: "the lock is only a table in the process: no operating-system lock excludes other processes",
        kind: Kind::Model(Flaw::ProcessLocal),
        breaks: &[Break {
            rule: "IDN-2",
            clause: "in any other process MUST NOT succeed",
            caught_by: &["identity::two_processes"],
        }],
    },
    Mutant {
        name: "basename-key",
        bug: "the table of locks in the process is keyed by the file name alone, so that `x.lock` and `sub/x.lock` wait for each other",
        kind: Kind::Model(Flaw::BasenameKey),
        breaks: &[Break {
            rule: "IDN-3",
            clause: "Holding the lock on one file MUST NOT delay or fail an acquire of the lock on a different file",
            caught_by: &["identity::different_files"],
        }],
    },
    Mutant {
        name: "path-string-identity",
        bug: "the lock is a file derived from the path as spelled, so that `x.lock` and `./x.lock` are two locks",
        kind: Kind::Model(Flaw::PathStringIdentity),
        breaks: &[Break {
            rule: "IDN-4",
            clause: "Lock objects whose paths lead to the same file MUST be objects of the same lock",
            caught_by: &[
                "identity::spellings_one_process",
                "identity::spellings_two_processes",
            ],
        }],
    },
    Mutant {
        name: "lexical-path-identity",
        bug: "the lock is a file derived from the absolute path with `.` and `..` resolved as text, so that a path through a symbolic link is another lock",
        kind: Kind::Model(Flaw::LexicalPathIdentity),
        breaks: &[Break {
            rule: "IDN-4",
            clause: "Lock objects whose paths lead to the same file MUST be objects of the same lock",
            caught_by: &["identity::symlinked_parent"],
        }],
    },
    Mutant {
        name: "canonical-path-identity",
        bug: "the lock is a file derived from the canonical path (symbolic links resolved), so that a hard link is another lock",
        kind: Kind::Model(Flaw::CanonicalPathIdentity),
        breaks: &[Break {
            rule: "IDN-4",
            clause: "Lock objects whose paths lead to the same file MUST be objects of the same lock",
            caught_by: &["identity::hard_link"],
        }],
    },
    Mutant {
        name: "free-acquire-sleeps",
        bug: "an acquire with a timeout other than zero that finds the lock free returns 500 ms after taking it",
        kind: Kind::Model(Flaw::FreeAcquireSleeps),
        breaks: &[Break {
            rule: "ACQ-1",
            clause: "MUST succeed at once and make its object the holder, whatever the object's timeout",
            caught_by: &["acquire::free_lock_at_once"],
        }],
    },
    Mutant {
        name: "untimed-poll-500ms",
        bug: "an acquire without a timeout notices a release only by trying again every 500 ms from its start",
        kind: Kind::Model(Flaw::UntimedPoll500ms),
        breaks: &[Break {
            rule: "ACQ-2",
            clause: "MUST succeed promptly once the holder releases it",
            caught_by: &[
                "identity::two_objects_two_threads",
                "identity::two_processes",
            ],
        }],
    },
    Mutant {
        name: "poll-500ms",
        bug: "every acquire that waits, timed or not, notices a release only by trying again every 500 ms from its start",
        kind: Kind::Model(Flaw::Poll500ms),
        breaks: &[
            Break {
                rule: "ACQ-2",
                clause: "MUST succeed promptly once the holder releases it",
                caught_by: &[
                    "identity::two_objects_two_threads",
                    "identity::two_processes",
                ],
            },
            Break {
                rule: "TMO-4",
                clause: "that acquire MUST succeed promptly",
                caught_by: &["timeout::released_before_timeout"],
            },
        ],
    },
    Mutant {
        name: "lock-on-open",
        bug: "creating a lock object takes the lock if it is free, and the object's first acquire then succeeds at once",
        kind: Kind::Model(Flaw::LockOnOpen),
        breaks: &[Break {
            rule: "ACQ-3",
            clause: "Creating a lock object MUST NOT acquire the lock nor keep any other object, in this process or another, from acquiring it",
            caught_by: &["acquire::open_does_not_lock"],
        }],
    },
    Mutant {
        name: "closed-after-release",
        bug: "a release closes the object's lock file for good: every later acquire through the object fails with an I/O error",
        kind: Kind::Model(Flaw::ClosedAfterRelease),
        breaks: &[Break {
            rule: "ACQ-4",
            clause: "After a release, the lock MUST be acquirable again",
            caught_by: &["acquire::reacquire_after_release"],
        }],
    },
    Mutant {
        name: "none-is-500ms",
        bug: "an acquire without a timeout gives up (timed out) after 500 ms",
        kind: Kind::Model(Flaw::NoneIsTimeout(500)),
        breaks: &[Break {
            rule: "TMO-1",
            clause: "MUST keep waiting for as long as the lock stays held",
            caught_by: &["timeout::none_waits_forever"],
        }],
    },
    Mutant {
        name: "none-is-5s",
        bug: "an acquire without a timeout gives up (timed out) after 5 s, a library's default",
        kind: Kind::Model(Flaw::NoneIsTimeout(5_000)),
        breaks: &[Break {
            rule: "TMO-1",
            clause: "MUST keep waiting for as long as the lock stays held",
            caught_by: &["timeout::none_waits_past_library_defaults"],
        }],
    },
    Mutant {
        name: "none-is-10s",
        bug: "an acquire without a timeout gives up (timed out) after 10 s, a library's default",
        kind: Kind::Model(Flaw::NoneIsTimeout(10_000)),
        breaks: &[Break {
            rule: "TMO-1",
            clause: "MUST keep waiting for as long as the lock stays held",
            caught_by: &["timeout::none_waits_past_library_defaults"],
        }],
    },
    Mutant {
        name: "zero-free-slow",
        bug: "a single attempt that finds the lock free returns 500 ms after taking it",
        kind: Kind::Model(Flaw::ZeroFreeSlow),
        breaks: &[Break {
            rule: "TMO-2",
            clause: "MUST succeed at once if the lock is free",
            caught_by: &["timeout::zero_is_a_single_attempt"],
        }],
    },
    Mutant {
        name: "zero-waits",
        bug: "a zero timeout is read as no timeout (`if timeout:`), so that a single attempt on a held lock waits",
        kind: Kind::Model(Flaw::ZeroWaits),
        breaks: &[Break {
            rule: "TMO-2",
            clause: "MUST fail at once with a lock error if it is held",
            caught_by: &["timeout::zero_is_a_single_attempt"],
        }],
    },
    Mutant {
        name: "zero-sleeps-then-fails",
        bug: "a single attempt on a held lock sleeps a polling interval (500 ms) before it fails",
        kind: Kind::Model(Flaw::ZeroSleepsThenFails),
        breaks: &[Break {
            rule: "TMO-2",
            clause: "MUST fail at once with a lock error if it is held",
            caught_by: &["timeout::zero_is_a_single_attempt"],
        }],
    },
    Mutant {
        name: "timeout-ignored",
        bug: "every acquire waits forever, whatever its timeout",
        kind: Kind::TimeoutIgnored,
        breaks: &[
            Break {
                rule: "TMO-2",
                clause: "MUST fail at once with a lock error if it is held",
                caught_by: &["timeout::zero_is_a_single_attempt"],
            },
            Break {
                rule: "TMO-3",
                clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
                caught_by: &["timeout::short_timeout_expires"],
            },
        ],
    },
    Mutant {
        name: "timeout-immediate",
        bug: "a timed acquire makes a single attempt instead of waiting",
        kind: Kind::TimeoutImmediate,
        breaks: &[
            Break {
                rule: "TMO-3",
                clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
                caught_by: &["timeout::short_timeout_expires"],
            },
            Break {
                rule: "TMO-4",
                clause: "that acquire MUST succeed promptly",
                caught_by: &["timeout::released_before_timeout"],
            },
        ],
    },
    Mutant {
        name: "gives-up-at-double",
        bug: "a timed acquire on a held lock gives up at twice its timeout",
        kind: Kind::Model(Flaw::GivesUpAtDouble),
        breaks: &[Break {
            rule: "TMO-3",
            clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
            caught_by: &[
                "timeout::short_timeout_expires",
                "timeout::short_timeout_expires_in_process",
            ],
        }],
    },
    Mutant {
        name: "gives-up-100ms-late",
        bug: "a timed acquire on a held lock gives up 100 ms after its timeout",
        kind: Kind::Model(Flaw::GivesUp100msLate),
        breaks: &[Break {
            rule: "TMO-3",
            clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
            caught_by: &[
                "timeout::short_timeout_expires",
                "timeout::short_timeout_expires_in_process",
            ],
        }],
    },
    Mutant {
        name: "gives-up-at-half",
        bug: "a timed acquire on a held lock gives up at half its timeout",
        kind: Kind::Model(Flaw::GivesUpAtHalf),
        breaks: &[Break {
            rule: "TMO-3",
            clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
            caught_by: &[
                "timeout::short_timeout_expires",
                "timeout::short_timeout_expires_in_process",
            ],
        }],
    },
    Mutant {
        name: "second-waiter-double-timeout",
        bug: "the second waiter of one process waits for the in-process lock with the full timeout, then for the file lock with the full timeout again (like `locket` 1.0.0)",
        kind: Kind::Model(Flaw::DeadlineRestartsAfterInProcessWait),
        breaks: &[Break {
            rule: "TMO-3",
            clause: "MUST fail with a lock error no earlier than T after it started, and not much later than T",
            caught_by: &["timeout::second_waiter_in_process_once"],
        }],
    },
    Mutant {
        name: "sleeps-out-timeout",
        bug: "a timed acquire on a held lock sleeps its whole timeout and then tries once more",
        kind: Kind::Model(Flaw::SleepsOutTimeout),
        breaks: &[Break {
            rule: "TMO-4",
            clause: "that acquire MUST succeed promptly",
            caught_by: &["timeout::released_before_timeout"],
        }],
    },
    Mutant {
        name: "first-waiter-timeout",
        bug: "an object waiting behind another object of its process waits with that object's timeout instead of its own",
        kind: Kind::Model(Flaw::FirstWaiterTimeout),
        breaks: &[Break {
            rule: "TMO-5",
            clause: "An acquire MUST use the timeout of its own object",
            caught_by: &["timeout::each_object_own_timeout"],
        }],
    },
    Mutant {
        name: "failed-acquire-frees",
        bug: "the clean-up of a failed acquire resets the lock's state in the process and unlocks the shared handle, freeing the holder's lock",
        kind: Kind::Model(Flaw::FailedAcquireFrees),
        breaks: &[Break {
            rule: "TMO-6",
            clause: "MUST leave the lock as it was: still held by its holder, which can still release it",
            caught_by: &[
                "timeout::failed_acquire_changes_nothing",
                "reentrancy::same_object_times_out",
            ],
        }],
    },
    Mutant {
        name: "reentrant",
        bug: "the thread that holds the lock through an object acquires it again at once, and only as many releases free it",
        kind: Kind::Reentrant,
        breaks: &[Break {
            rule: "REE-1",
            clause: "An acquire through the object that holds the lock MUST NOT succeed",
            caught_by: &[
                "reentrancy::same_object_single_attempt",
                "reentrancy::same_object_times_out",
            ],
        }],
    },
    Mutant {
        name: "holding-thread-passes",
        bug: "the thread that holds the lock acquires it at once through any other object (a lock owned by a thread)",
        kind: Kind::Model(Flaw::HoldingThreadPasses),
        breaks: &[Break {
            rule: "REE-2",
            clause: "MUST NOT succeed while the lock is held, also when it is made by the thread that acquired the lock",
            caught_by: &["reentrancy::second_object_same_thread"],
        }],
    },
    Mutant {
        name: "shared-object-passes",
        bug: "an acquire through the holding object from another thread succeeds at once (\"this object already holds it\")",
        kind: Kind::Model(Flaw::SharedObjectPasses),
        breaks: &[Break {
            rule: "REE-3",
            clause: "MUST wait until the lock is released, and then succeed",
            caught_by: &["reentrancy::shared_object_two_threads"],
        }],
    },
    Mutant {
        name: "release-other-thread-refused",
        bug: "a release from another thread than the acquiring one is refused as not held",
        kind: Kind::ReleaseOtherThreadRefused,
        breaks: &[Break {
            rule: "REL-1",
            clause: "MUST succeed from any thread of the holding process",
            caught_by: &["release::other_thread_releases"],
        }],
    },
    Mutant {
        name: "other-thread-release-ignored",
        bug: "a release from another thread than the acquiring one answers `released` and does nothing",
        kind: Kind::Model(Flaw::OtherThreadReleaseIgnored),
        breaks: &[Break {
            rule: "REL-1",
            clause: "MUST succeed from any thread of the holding process, not only from the thread that acquired; the lock is then free for every other object and process",
            caught_by: &["release::other_thread_releases"],
        }],
    },
    Mutant {
        name: "other-thread-release-keeps-mark",
        bug: "a release from another thread than the acquiring one unlocks the file but leaves the lock marked held in the process, so that objects of the process keep waiting",
        kind: Kind::Model(Flaw::OtherThreadReleaseKeepsMark),
        breaks: &[Break {
            rule: "REL-1",
            clause: "MUST succeed from any thread of the holding process, not only from the thread that acquired; the lock is then free for every other object and process",
            caught_by: &["release::other_thread_releases_in_process"],
        }],
    },
    Mutant {
        name: "release-unheld-ok",
        bug: "every release through an object that does not hold the lock answers `released`, and changes nothing",
        kind: Kind::ReleaseUnheldOk,
        breaks: &[
            Break {
                rule: "REL-2",
                clause: "MUST fail with a not-held error",
                caught_by: &["release::not_held"],
            },
            Break {
                rule: "REL-3",
                clause: "MUST fail with a not-held error",
                caught_by: &["release::released_twice"],
            },
            Break {
                rule: "REL-4",
                clause: "MUST fail with a not-held error also when another object of the same process holds it",
                caught_by: &["release::non_holding_object_same_process"],
            },
        ],
    },
    Mutant {
        name: "never-held-release-ok",
        bug: "a release through an object that has never held the lock answers `released` while no object of its process holds it",
        kind: Kind::Model(Flaw::NeverHeldReleaseOk),
        breaks: &[Break {
            rule: "REL-2",
            clause: "MUST fail with a not-held error",
            caught_by: &["release::not_held"],
        }],
    },
    Mutant {
        name: "unheld-release-leaks-probe",
        bug: "a release through an object of a process that does not hold the lock asks whether anyone does by locking the file through a new descriptor, and never closes it",
        kind: Kind::Model(Flaw::UnheldReleaseLeaksProbe),
        breaks: &[Break {
            rule: "REL-2",
            clause: "MUST change nothing: a free lock stays free, and a lock held by another process stays held",
            caught_by: &["release::not_held"],
        }],
    },
    Mutant {
        name: "second-release-ok",
        bug: "a second release through an object answers `released`",
        kind: Kind::Model(Flaw::SecondReleaseOk),
        breaks: &[Break {
            rule: "REL-3",
            clause: "MUST fail with a not-held error",
            caught_by: &["release::released_twice"],
        }],
    },
    Mutant {
        name: "second-release-unlocks",
        bug: "a second release through an object unlocks the process's shared handle before it answers not_held, freeing the lock that another object of the process holds",
        kind: Kind::Model(Flaw::SecondReleaseUnlocks),
        breaks: &[Break {
            rule: "REL-3",
            clause: "MUST NOT affect the lock, which another object or process may hold by then",
            caught_by: &["release::released_twice_in_process"],
        }],
    },
    Mutant {
        name: "process-holder-release-ok",
        bug: "a release through an object that has never held the lock answers `released` when another object of its process holds it (the check is whether the process holds)",
        kind: Kind::Model(Flaw::ProcessHolderReleaseOk),
        breaks: &[Break {
            rule: "REL-4",
            clause: "MUST fail with a not-held error also when another object of the same process holds it",
            caught_by: &["release::non_holding_object_same_process"],
        }],
    },
    Mutant {
        name: "never-held-release-unlocks",
        bug: "a release through an object that has never held the lock unlocks the process's shared handle before it answers not_held",
        kind: Kind::Model(Flaw::NeverHeldReleaseUnlocks),
        breaks: &[Break {
            rule: "REL-4",
            clause: "that holder MUST keep the lock",
            caught_by: &["release::non_holding_object_same_process"],
        }],
    },
    Mutant {
        name: "pid-file",
        bug: "the lock is a file beside the lock file (named by its device and inode), created exclusively and deleted on release, which nobody deletes for a killed holder",
        kind: Kind::Model(Flaw::PidFile),
        breaks: &[Break {
            rule: "DTH-1",
            clause: "the lock MUST become free promptly: a waiter in another process acquires it, and so does a process that opens the lock afterwards",
            caught_by: &[
                "death::killed_holder_frees_waiter",
                "death::killed_holder_frees_newcomer",
            ],
        }],
    },
    Mutant {
        name: "lock-in-contents",
        bug: "the lock is the word `locked` written in the lock file, which nobody erases for a killed holder",
        kind: Kind::LockInContents,
        breaks: &[
            Break {
                rule: "DTH-1",
                clause: "the lock MUST become free promptly: a waiter in another process acquires it, and so does a process that opens the lock afterwards",
                caught_by: &["death::killed_holder_frees_waiter"],
            },
            Break {
                rule: "FIL-2",
                clause: "MUST NOT truncate, write to or otherwise change the lock file's contents",
                caught_by: &["file::contents_untouched"],
            },
        ],
    },
    Mutant {
        name: "waiter-tickets",
        bug: "waiters queue as ticket files beside the lock file and take the lock in ticket order, so that a killed waiter's ticket bars everyone",
        kind: Kind::Model(Flaw::WaiterTickets),
        breaks: &[Break {
            rule: "DTH-2",
            clause: "the lock MUST be as if the process had never waited: it stays with its holder and, once released, is free at once for others",
            caught_by: &["death::killed_waiter_leaves_no_trace"],
        }],
    },
    Mutant {
        name: "delete-on-release",
        bug: "releasing deletes the lock file before unlocking, so that a waiter on the old file and a newcomer that creates a new one both hold the lock",
        kind: Kind::DeleteOnRelease,
        breaks: &[Break {
            rule: "FIL-1",
            clause: "MUST NOT delete, rename or replace the lock file",
            caught_by: &[
                "file::kept_after_release",
                "file::newcomer_excluded_after_handover",
            ],
        }],
    },
    Mutant {
        name: "failed-acquire-replaces-file",
        bug: "a failed acquire writes the lock file anew, with the same contents, under the same name",
        kind: Kind::Model(Flaw::FailedAcquireReplacesFile),
        breaks: &[Break {
            rule: "FIL-1",
            clause: "MUST NOT delete, rename or replace the lock file",
            caught_by: &["file::failed_acquire_keeps_file"],
        }],
    },
    Mutant {
        name: "refused-release-replaces-file",
        bug: "a refused release writes the lock file anew, with the same contents, under the same name",
        kind: Kind::Model(Flaw::RefusedReleaseReplacesFile),
        breaks: &[Break {
            rule: "FIL-1",
            clause: "MUST NOT delete, rename or replace the lock file",
            caught_by: &["file::refused_release_keeps_file"],
        }],
    },
    Mutant {
        name: "truncate-on-acquire",
        bug: "every acquire opens the lock file anew with truncation",
        kind: Kind::Model(Flaw::TruncateOnAcquire),
        breaks: &[Break {
            rule: "FIL-2",
            clause: "MUST NOT truncate, write to or otherwise change the lock file's contents",
            caught_by: &["file::contents_untouched"],
        }],
    },
    Mutant {
        name: "failed-acquire-truncates",
        bug: "a failed acquire truncates the lock file",
        kind: Kind::Model(Flaw::FailedAcquireTruncates),
        breaks: &[Break {
            rule: "FIL-2",
            clause: "MUST NOT truncate, write to or otherwise change the lock file's contents",
            caught_by: &["file::failed_acquire_keeps_file"],
        }],
    },
    Mutant {
        name: "refused-release-truncates",
        bug: "a refused release truncates the lock file",
        kind: Kind::Model(Flaw::RefusedReleaseTruncates),
        breaks: &[Break {
            rule: "FIL-2",
            clause: "MUST NOT truncate, write to or otherwise change the lock file's contents",
            caught_by: &["file::refused_release_keeps_file"],
        }],
    },
    Mutant {
        name: "fcntl-shared-handle",
        bug: "the operating-system lock is an `fcntl` record lock on the shared handle, which the process loses when it closes any descriptor on the file",
        kind: Kind::Model(Flaw::FcntlLock),
        breaks: &[Break {
            rule: "FIL-3",
            clause: "in the holding process MUST NOT release the lock",
            caught_by: &["file::plain_handle_closed_in_holder"],
        }],
    },
    Mutant {
        name: "sibling-file",
        bug: "for a lock file that does not exist, the lock is taken on a file beside it (`x.lock.lck`), and the lock file itself is never created",
        kind: Kind::Model(Flaw::SiblingFile),
        breaks: &[Break {
            rule: "FIL-4",
            clause: "a successful acquire MUST have created it",
            caught_by: &[
                "file::kept_after_release",
                "file::newcomer_excluded_after_handover",
            ],
        }],
    },
    Mutant {
        name: "close-unlocks",
        bug: "closing a lock object unlocks the process's shared handle, whether the object holds the lock or not",
        kind: Kind::Model(Flaw::CloseUnlocks),
        breaks: &[Break {
            rule: "FIL-5",
            clause: "MUST NOT release the lock held by another object of the same process",
            caught_by: &["file::other_object_closed_in_holder"],
        }],
    },
    Mutant {
        name: "leak-to-child",
        bug: "every acquire opens the lock file without close-on-exec and every release closes it instead of unlocking, so that a child started while the lock is held keeps it",
        kind: Kind::LeakToChild,
        breaks: &[
            Break {
                rule: "INH-1",
                clause: "once the holder releases it, it MUST be free promptly for others while the child lives on",
                caught_by: &["inheritance::child_after_release"],
            },
            Break {
                rule: "INH-2",
                clause: "the lock MUST become free promptly while the child lives on",
                caught_by: &["inheritance::child_after_parent_killed"],
            },
        ],
    },
    Mutant {
        name: "leaked-handle",
        bug: "the shared handle is opened without close-on-exec (releases unlock it properly), so that a child keeps the lock of a killed parent",
        kind: Kind::Model(Flaw::LeakedHandle),
        breaks: &[Break {
            rule: "INH-2",
            clause: "the lock MUST become free promptly while the child lives on",
            caught_by: &["inheritance::child_after_parent_killed"],
        }],
    },
    Mutant {
        name: "missing-directory-is-contention",
        bug: "a missing directory is read as a held lock, and the acquire waits for it",
        kind: Kind::Model(Flaw::MissingDirectoryIsContention),
        breaks: &[Break {
            rule: "PTH-1",
            clause: "MUST fail at once with an I/O error, whatever the timeout: never wait, never a lock error",
            caught_by: &["paths::missing_parent_directory"],
        }],
    },
    Mutant {
        name: "directory-opened-read-only",
        bug: "a path that is a directory is opened read-only instead, and locked",
        kind: Kind::Model(Flaw::DirectoryOpenedReadOnly),
        breaks: &[Break {
            rule: "PTH-2",
            clause: "MUST fail at once with an I/O error, whatever the timeout",
            caught_by: &["paths::path_is_a_directory"],
        }],
    },
    Mutant {
        name: "permission-is-contention",
        bug: "a refused permission is read as a held lock, and the acquire waits for it",
        kind: Kind::Model(Flaw::PermissionIsContention),
        breaks: &[Break {
            rule: "PTH-3",
            clause: "MUST fail at once with an I/O error, whatever the timeout",
            caught_by: &["paths::read_only_directory"],
        }],
    },
    Mutant {
        name: "callback-every-attempt",
        bug: "a waiting acquire calls the contention callback at every attempt",
        kind: Kind::Model(Flaw::CallbackEveryAttempt),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_while_waiting_for_process"],
        }],
    },
    Mutant {
        name: "callback-os-only",
        bug: "the contention callback is called only when another process holds the lock, never for a wait inside the process",
        kind: Kind::Model(Flaw::CallbackOsOnly),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_while_waiting_in_process"],
        }],
    },
    Mutant {
        name: "callback-after-wait",
        bug: "the contention callback is called when the wait is over, not when it starts",
        kind: Kind::Model(Flaw::CallbackAfterWait),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_while_waiting_for_process"],
        }],
    },
    Mutant {
        name: "callback-once-per-object",
        bug: "the contention callback is called by an object's first wait only, not by its later ones",
        kind: Kind::Model(Flaw::CallbackOncePerObject),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_per_wait"],
        }],
    },
    Mutant {
        name: "callback-after-500ms",
        bug: "the contention callback is called only once a wait has lasted 500 ms, so that short waits never call it",
        kind: Kind::Model(Flaw::CallbackAfter500ms),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_per_wait"],
        }],
    },
    Mutant {
        name: "callback-reminder-500ms",
        bug: "the contention callback is called when a wait starts and again every 500 ms while it lasts",
        kind: Kind::Model(Flaw::CallbackReminder500ms),
        breaks: &[Break {
            rule: "CBK-1",
            clause: "MUST call its object's contention callback exactly once, when it starts to wait, however long it then waits and whether it then acquires or fails, for a lock held by another process or by another object of the same process",
            caught_by: &["callback::once_while_waiting_for_process"],
        }],
    },
    Mutant {
        name: "callback-every-acquire",
        bug: "the contention callback is called at the start of every acquire, whether it waits or not",
        kind: Kind::Model(Flaw::CallbackEveryAcquire),
        breaks: &[Break {
            rule: "CBK-2",
            clause: "MUST NOT call the contention callback",
            caught_by: &["callback::never_without_waiting"],
        }],
    },
    Mutant {
        name: "callback-on-single-attempt",
        bug: "a single attempt that finds the lock held calls the contention callback",
        kind: Kind::Model(Flaw::CallbackOnSingleAttempt),
        breaks: &[Break {
            rule: "CBK-2",
            clause: "MUST NOT call the contention callback",
            caught_by: &["callback::never_without_waiting"],
        }],
    },
    Mutant {
        name: "racy-claim",
        bug: "an acquire that sees the lock free in its process claims it 10 ms later without looking again, so that two threads of one process may both take it",
        kind: Kind::Model(Flaw::RacyClaim),
        breaks: &[Break {
            rule: "STR-1",
            clause: "a lock MUST NOT have two holders at the same time",
            caught_by: &["stress::no_two_holders"],
        }],
    },
];
