package registry

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/podagent/podagent/apiserver/store"
	"github.com/podagent/podagent/apiserver/validation"
	"github.com/podagent/podagent/runtime"
)

// Registry applies the apiserver's rules for pods and namespaces on top of the store.
type Registry struct {
	store *store.Store
	now   func() time.Time
}

// New returns a Registry over st.
func New(st *store.Store) *Registry {
	return &Registry{store: st, now: time.Now}
}

// Store is the store the registry writes to.
func (r *Registry) Store() *store.Store { return r.store }

var (
	podKind      = schema.GroupKind{Kind: "Pod"}
	podsResource = schema.GroupResource{Resource: "pods"}
)

// AdmitPod defaults and validates a pod. The error is the apiserver's Invalid status, naming each
// offending field.
func AdmitPod(pod *corev1.Pod) error {
	SetPodDefaults(pod)
	if errs := validation.Pod(pod); len(errs) > 0 {
		return apierrors.NewInvalid(podKind, pod.Name, errs)
	}
	return nil
}

// PreparePodForCreate admits a new pod and resets its status to what the apiserver gives a new pod:
// Pending, with its QoS class.
func PreparePodForCreate(pod *corev1.Pod) error {
	if err := AdmitPod(pod); err != nil {
		return err
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: runtime.QOSClass(pod)}
	pod.DeletionTimestamp, pod.DeletionGracePeriodSeconds = nil, nil
	return nil
}

// CreatePod admits pod and stores it.
func (r *Registry) CreatePod(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, error) {
	pod = pod.DeepCopy()
	if err := PreparePodForCreate(pod); err != nil {
		return nil, err
	}
	obj, err := r.store.Create(ctx, store.Pods, pod)
	if err != nil {
		return nil, err
	}
	return obj.(*corev1.Pod), nil
}

// DeletePod deletes a pod as the apiserver does. A pod that never reached a node, or whose
// containers have all ended, goes at once. Any other pod is marked (deletionTimestamp,
// deletionGracePeriodSeconds) and the agent removes the object once its containers are gone; a
// second delete may only shorten the grace period. grace nil means the pod's own
// terminationGracePeriodSeconds. It returns the pod as it is after the call, and whether the
// object is gone.
func (r *Registry) DeletePod(ctx context.Context, namespace, name string, grace *int64, precond *metav1.Preconditions) (*corev1.Pod, bool, error) {
	obj, err := r.store.Get(ctx, store.Pods, namespace, name)
	if err != nil {
		return nil, false, err
	}
	pod := obj.(*corev1.Pod)
	g := gracePeriod(pod, grace)
	if g == 0 {
		obj, err := r.store.Delete(ctx, store.Pods, namespace, name, precond)
		if err != nil {
			return nil, false, err
		}
		return obj.(*corev1.Pod), true, nil
	}
	obj, err = r.store.GuaranteedUpdate(ctx, store.Pods, namespace, name, func(cur store.Object) (store.Object, error) {
		p := cur.(*corev1.Pod)
		if err := CheckPreconditions(podsResource, p, precond); err != nil {
			return nil, err
		}
		if old := p.DeletionGracePeriodSeconds; old != nil && p.DeletionTimestamp != nil {
			if *old <= g {
				return p, nil // already going, at least as soon
			}
			// A shorter period moves the deadline back by the difference, as the apiserver does.
			p.DeletionTimestamp = ptr.To(metav1.NewTime(p.DeletionTimestamp.Add(time.Duration(g-*old) * time.Second)))
			p.DeletionGracePeriodSeconds = ptr.To(g)
			return p, nil
		}
		p.DeletionGracePeriodSeconds = ptr.To(g)
		p.DeletionTimestamp = ptr.To(metav1.NewTime(r.now().Add(time.Duration(g) * time.Second)))
		return p, nil
	})
	if err != nil {
		return nil, false, err
	}
	return obj.(*corev1.Pod), false, nil
}

// gracePeriod is the apiserver's grace period for deleting pod: none for a pod that is not on a
// node or has finished, else the one asked for, else the pod's own.
func gracePeriod(pod *corev1.Pod, grace *int64) int64 {
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if grace != nil {
		return max(*grace, 0)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return max(*g, 0)
	}
	return defaultTerminationGracePeriod
}

// CheckPreconditions returns the apiserver's Conflict when a delete's preconditions (uid,
// resourceVersion) do not hold for obj, a pod or namespace.
func CheckPreconditions(gr schema.GroupResource, obj metav1.Object, p *metav1.Preconditions) error {
	if p == nil {
		return nil
	}
	if p.UID != nil && *p.UID != obj.GetUID() {
		return apierrors.NewConflict(gr, obj.GetName(),
			fmt.Errorf("the UID in the precondition (%s) does not match the UID in record (%s). The object might have been deleted and then recreated", *p.UID, obj.GetUID()))
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != obj.GetResourceVersion() {
		return apierrors.NewConflict(gr, obj.GetName(),
			fmt.Errorf("the ResourceVersion in the precondition (%s) does not match the ResourceVersion in record (%s). The object might have been modified", *p.ResourceVersion, obj.GetResourceVersion()))
	}
	return nil
}
