// Package store keeps the agent's desired state (Pods, Namespaces, Nodes, Events and Leases) in
// a bbolt file with apiserver-like semantics: resourceVersions, optimistic
// concurrency, generation, and watches that resume from a resourceVersion.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/watch"
)

const (
	// lockTimeout bounds the wait for bbolt's file lock: a second agent on
	// the same file must fail with an error, not hang forever.
	lockTimeout = 2 * time.Second

	defaultRingSize    = 1000
	defaultWatchBuffer = 100
)

// Bucket and key of the persisted resourceVersion counter.
const (
	metaBucket = "meta"
	rvKey      = "resourceVersion"
)

// errUnchanged rolls back an update that would not change the object, so
// no-op updates neither bump the resourceVersion nor emit an event.
var errUnchanged = errors.New("object unchanged")

// Store is a bbolt-backed object store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB

	// mu serializes every write together with its ring append and watcher
	// fan-out, and watcher registration. Holding one lock across all three
	// makes RV order == ring order == delivery order, and a watch that
	// registers sees each event either in its replay or live, never both
	// and never neither.
	mu       sync.Mutex
	rv       uint64 // last committed resourceVersion
	ring     *ring
	watchers map[*watcher]struct{}
	closed   bool

	watchBuffer int
	now         func() time.Time
}

// Open opens (creating if needed) the store file at path.
func Open(path string) (*Store, error) {
	return open(path, options{lockTimeout: lockTimeout, ringSize: defaultRingSize, watchBuffer: defaultWatchBuffer})
}

// options are knobs tests shrink (ring, buffer, lock wait) to reach edge
// cases quickly.
type options struct {
	lockTimeout time.Duration
	ringSize    int
	watchBuffer int
}

func open(path string, o options) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: file is locked, is another agent running? %w", path, err)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var rv uint64
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{Pods, Namespaces, Nodes, Events, Leases, metaBucket} {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		if v := tx.Bucket([]byte(metaBucket)).Get([]byte(rvKey)); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("corrupt resourceVersion record (%d bytes)", len(v))
			}
			rv = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{
		db:          db,
		rv:          rv,
		ring:        newRing(o.ringSize, rv),
		watchers:    map[*watcher]struct{}{},
		watchBuffer: o.watchBuffer,
		now:         time.Now,
	}, nil
}

// Close ends all watches (closing their channels) and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	for w := range s.watchers {
		s.stopLocked(w)
	}
	s.mu.Unlock()
	return s.db.Close()
}

// ResourceVersion returns the store's current resourceVersion.
func (s *Store) ResourceVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return formatRV(s.rv)
}

// Create stores a new object, filling in uid (unless set: a static pod's UID
// comes from its source; the API layer clears a client's), creationTimestamp,
// generation and resourceVersion. obj is not modified; the stored object is
// returned.
func (s *Store) Create(ctx context.Context, resource string, obj Object) (Object, error) {
	ri, err := s.check(ctx, resource, obj)
	if err != nil {
		return nil, err
	}
	if obj.GetResourceVersion() != "" {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("create %s %s: resourceVersion should not be set on objects to be created",
			ri.gr, keyString(obj.GetNamespace(), obj.GetName())))
	}
	obj = obj.DeepCopyObject().(Object)
	key := []byte(keyString(obj.GetNamespace(), obj.GetName()))
	ev, err := s.write(resource, obj.GetNamespace(), func(tx *bolt.Tx, rv uint64) (Event, error) {
		b := tx.Bucket([]byte(resource))
		if b.Get(key) != nil {
			return Event{}, apierrors.NewAlreadyExists(ri.gr, obj.GetName())
		}
		if obj.GetUID() == "" {
			obj.SetUID(uuid.NewUUID())
		}
		// The apiserver stores timestamps with second precision; match it so
		// what we return equals what a later Get returns.
		obj.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(time.Second)))
		obj.SetGeneration(1)
		obj.SetResourceVersion(formatRV(rv))
		data, err := ri.encode(obj)
		if err != nil {
			return Event{}, err
		}
		if err := b.Put(key, data); err != nil {
			return Event{}, fmt.Errorf("create %s %s: %w", ri.gr, key, err)
		}
		return Event{Type: watch.Added, Object: obj}, nil
	})
	if err != nil {
		return nil, err
	}
	return ev.Object.DeepCopyObject().(Object), nil
}

// Get returns the stored object or a NotFound error.
func (s *Store) Get(ctx context.Context, resource, namespace, name string) (Object, error) {
	ri, namespace, err := resolve(ctx, resource, namespace)
	if err != nil {
		return nil, err
	}
	key := []byte(keyString(namespace, name))
	var obj Object
	err = s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket([]byte(resource)).Get(key)
		if data == nil {
			return apierrors.NewNotFound(ri.gr, name)
		}
		obj, err = ri.decode(key, data)
		return err
	})
	return obj, err
}

// List returns the objects of a resource in namespace ("" = all namespaces)
// and the resourceVersion of that snapshot, from which a Watch can resume.
func (s *Store) List(ctx context.Context, resource, namespace string) ([]Object, string, error) {
	ri, err := lookupResource(resource)
	if err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	var prefix []byte
	if ri.namespaced && namespace != "" {
		prefix = []byte(namespace + "/")
	}
	var items []Object
	var rv uint64
	// One read transaction: the items and the RV are the same snapshot.
	err = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte(metaBucket)).Get([]byte(rvKey)); v != nil {
			rv = binary.BigEndian.Uint64(v)
		}
		c := tx.Bucket([]byte(resource)).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			obj, err := ri.decode(k, v)
			if err != nil {
				return err
			}
			items = append(items, obj)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", ri.gr, err)
	}
	return items, formatRV(rv), nil
}

// Update replaces a stored object. If obj carries a resourceVersion (or
// precond one) that differs from the stored one, it fails with Conflict.
// uid, creationTimestamp and generation come from the stored object;
// generation is bumped when spec changed. An update that changes nothing
// is not written and returns the stored object.
func (s *Store) Update(ctx context.Context, resource string, obj Object, precond *metav1.Preconditions) (Object, error) {
	ri, err := s.check(ctx, resource, obj)
	if err != nil {
		return nil, err
	}
	obj = obj.DeepCopyObject().(Object)
	ns, name := obj.GetNamespace(), obj.GetName()
	key := []byte(keyString(ns, name))
	var unchanged Object
	ev, err := s.write(resource, ns, func(tx *bolt.Tx, rv uint64) (Event, error) {
		b := tx.Bucket([]byte(resource))
		old, err := loadExisting(b, ri, key, name, precond)
		if err != nil {
			return Event{}, err
		}
		oldData := b.Get(key) // points into the mmap: no copy
		if err := checkPreconditions(ri.gr, old, &metav1.Preconditions{
			UID: nonEmpty(obj.GetUID()), ResourceVersion: nonEmpty(obj.GetResourceVersion()),
		}); err != nil {
			return Event{}, err
		}
		obj.SetUID(old.GetUID())
		obj.SetCreationTimestamp(old.GetCreationTimestamp())
		obj.SetGeneration(old.GetGeneration())
		obj.SetResourceVersion(old.GetResourceVersion())
		data, err := ri.encode(obj)
		if err != nil {
			return Event{}, err
		}
		if bytes.Equal(data, oldData) {
			unchanged = old
			return Event{}, errUnchanged
		}
		changed, err := specChanged(oldData, data)
		if err != nil {
			return Event{}, fmt.Errorf("update %s %s: compare spec: %w", ri.gr, key, err)
		}
		if changed {
			obj.SetGeneration(old.GetGeneration() + 1)
		}
		obj.SetResourceVersion(formatRV(rv))
		if data, err = ri.encode(obj); err != nil {
			return Event{}, err
		}
		if err := b.Put(key, data); err != nil {
			return Event{}, fmt.Errorf("update %s %s: %w", ri.gr, key, err)
		}
		return Event{Type: watch.Modified, Object: obj, Prev: old}, nil
	})
	if errors.Is(err, errUnchanged) {
		return unchanged, nil
	}
	if err != nil {
		return nil, err
	}
	return ev.Object.DeepCopyObject().(Object), nil
}

// UpdateFunc computes the new state from a copy of the current one.
type UpdateFunc func(current Object) (Object, error)

// GuaranteedUpdate reads the object, applies fn and writes the result,
// retrying from a fresh read whenever a concurrent write causes a Conflict.
// fn may run several times and must not call back into the store's writes
// expecting them to be atomic with it.
func (s *Store) GuaranteedUpdate(ctx context.Context, resource, namespace, name string, fn UpdateFunc) (Object, error) {
	for {
		cur, err := s.Get(ctx, resource, namespace, name)
		if err != nil {
			return nil, err
		}
		rv := cur.GetResourceVersion()
		next, err := fn(cur.DeepCopyObject().(Object))
		if err != nil {
			return nil, fmt.Errorf("update %s %s: %w", resource, keyString(namespace, name), err)
		}
		if next == nil {
			return nil, fmt.Errorf("update %s %s: update func returned no object", resource, keyString(namespace, name))
		}
		// The RV we read is the optimistic-concurrency token, whatever fn did.
		next.SetResourceVersion(rv)
		out, err := s.Update(ctx, resource, next, nil)
		if apierrors.IsConflict(err) && ctx.Err() == nil {
			continue
		}
		return out, err
	}
}

// Delete removes an object and returns its last state, whose
// resourceVersion is that of the deletion (as in apiserver watch events).
func (s *Store) Delete(ctx context.Context, resource, namespace, name string, precond *metav1.Preconditions) (Object, error) {
	ri, namespace, err := resolve(ctx, resource, namespace)
	if err != nil {
		return nil, err
	}
	key := []byte(keyString(namespace, name))
	ev, err := s.write(resource, namespace, func(tx *bolt.Tx, rv uint64) (Event, error) {
		b := tx.Bucket([]byte(resource))
		old, err := loadExisting(b, ri, key, name, precond)
		if err != nil {
			return Event{}, err
		}
		if err := b.Delete(key); err != nil {
			return Event{}, fmt.Errorf("delete %s %s: %w", ri.gr, key, err)
		}
		old.SetResourceVersion(formatRV(rv))
		return Event{Type: watch.Deleted, Object: old}, nil
	})
	if err != nil {
		return nil, err
	}
	return ev.Object.DeepCopyObject().(Object), nil
}

// write runs fn in a bbolt write transaction with the next resourceVersion,
// persists that RV in the same transaction (so it survives restart and never
// goes backwards), then publishes fn's event to the ring and watchers.
func (s *Store) write(resource, namespace string, fn func(tx *bolt.Tx, rv uint64) (Event, error)) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Event{}, fmt.Errorf("%s %s: %w", resource, namespace, bolt.ErrDatabaseNotOpen)
	}
	next := s.rv + 1
	var ev Event
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if ev, err = fn(tx, next); err != nil {
			return err
		}
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], next)
		return tx.Bucket([]byte(metaBucket)).Put([]byte(rvKey), buf[:])
	})
	if err != nil {
		return Event{}, err
	}
	s.rv = next
	s.publishLocked(next, resource, namespace, ev)
	return ev, nil
}

// check validates the resource, the object's type and its key.
func (s *Store) check(ctx context.Context, resource string, obj Object) (resourceInfo, error) {
	ri, err := lookupResource(resource)
	if err != nil {
		return ri, err
	}
	if err := ctx.Err(); err != nil {
		return ri, err
	}
	if err := ri.checkType(obj); err != nil {
		return ri, err
	}
	ns, name := obj.GetNamespace(), obj.GetName()
	switch {
	case name == "":
		return ri, apierrors.NewBadRequest(fmt.Sprintf("%s: name is required", ri.gr))
	case strings.Contains(name, "/") || strings.Contains(ns, "/"):
		return ri, apierrors.NewBadRequest(fmt.Sprintf("%s %q: name and namespace must not contain '/'", ri.gr, keyString(ns, name)))
	case ri.namespaced && ns == "":
		return ri, apierrors.NewBadRequest(fmt.Sprintf("%s %q: namespace is required", ri.gr, name))
	case !ri.namespaced && ns != "":
		return ri, apierrors.NewBadRequest(fmt.Sprintf("%s %q is cluster-scoped, namespace must be empty", ri.gr, name))
	}
	return ri, nil
}

// checkPreconditions returns Conflict, worded like the apiserver's, when a
// set precondition does not match the stored object.
func checkPreconditions(gr schema.GroupResource, old Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	if p.UID != nil && *p.UID != old.GetUID() {
		return apierrors.NewConflict(gr, old.GetName(), fmt.Errorf(
			"Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, old.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != old.GetResourceVersion() {
		return apierrors.NewConflict(gr, old.GetName(), errors.New(
			"the object has been modified; please apply your changes to the latest version and try again"))
	}
	return nil
}

func nonEmpty[T ~string](v T) *T {
	if v == "" {
		return nil
	}
	return &v
}

// resolve looks up resource, checks ctx, and drops the namespace of a cluster-scoped resource,
// whose objects are keyed by name alone.
func resolve(ctx context.Context, resource, namespace string) (resourceInfo, string, error) {
	ri, err := lookupResource(resource)
	if err != nil {
		return ri, "", err
	}
	if err := ctx.Err(); err != nil {
		return ri, "", err
	}
	if !ri.namespaced {
		namespace = ""
	}
	return ri, namespace, nil
}

// loadExisting reads the stored object at key for a write that needs it: NotFound when absent,
// Conflict when precond does not hold.
func loadExisting(b *bolt.Bucket, ri resourceInfo, key []byte, name string, precond *metav1.Preconditions) (Object, error) {
	data := b.Get(key)
	if data == nil {
		return nil, apierrors.NewNotFound(ri.gr, name)
	}
	old, err := ri.decode(key, data)
	if err != nil {
		return nil, err
	}
	if err := checkPreconditions(ri.gr, old, precond); err != nil {
		return nil, err
	}
	return old, nil
}
