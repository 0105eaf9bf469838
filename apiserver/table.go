package apiserver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/podagent/podagent/apiserver/store"
)

// Server-side printing: the Tables `kubectl get` asks for, with the kube-apiserver's columns
// (k8s.io/kubernetes/pkg/printers/internalversion). Priority 1 columns show with -o wide.

func col(name, desc string, priority int32) metav1.TableColumnDefinition {
	c := metav1.TableColumnDefinition{Name: name, Type: "string", Description: desc, Priority: priority}
	if name == "Name" {
		c.Format = "name"
	}
	return c
}

var columns = map[string][]metav1.TableColumnDefinition{
	store.Pods: {
		col("Name", metav1.ObjectMeta{}.SwaggerDoc()["name"], 0),
		col("Ready", "The aggregate readiness state of this pod for accepting traffic.", 0),
		col("Status", "The aggregate status of the containers in this pod.", 0),
		col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
		col("Age", metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], 0),
		col("IP", corev1.PodStatus{}.SwaggerDoc()["podIP"], 1),
		col("Node", corev1.PodSpec{}.SwaggerDoc()["nodeName"], 1),
		col("Nominated Node", corev1.PodStatus{}.SwaggerDoc()["nominatedNodeName"], 1),
		col("Readiness Gates", corev1.PodSpec{}.SwaggerDoc()["readinessGates"], 1),
	},
	store.Namespaces: {
		col("Name", metav1.ObjectMeta{}.SwaggerDoc()["name"], 0),
		col("Status", "The status of the namespace", 0),
		col("Age", metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], 0),
	},
	store.Events: {
		col("Last Seen", corev1.Event{}.SwaggerDoc()["lastTimestamp"], 0),
		col("Type", corev1.Event{}.SwaggerDoc()["type"], 0),
		col("Reason", corev1.Event{}.SwaggerDoc()["reason"], 0),
		col("Object", corev1.Event{}.SwaggerDoc()["involvedObject"], 0),
		col("Message", corev1.Event{}.SwaggerDoc()["message"], 0),
		col("Source", corev1.Event{}.SwaggerDoc()["source"], 1),
		col("Subobject", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"], 1),
		col("First Seen", corev1.Event{}.SwaggerDoc()["firstTimestamp"], 1),
		col("Count", corev1.Event{}.SwaggerDoc()["count"], 1),
		col("Name", metav1.ObjectMeta{}.SwaggerDoc()["name"], 1),
	},
	store.Nodes: {
		col("Name", metav1.ObjectMeta{}.SwaggerDoc()["name"], 0),
		col("Status", "The status of the node", 0),
		col("Roles", "The roles of the node", 0),
		col("Age", metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], 0),
		col("Version", corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"], 0),
		col("Internal-IP", corev1.NodeStatus{}.SwaggerDoc()["addresses"], 1),
		col("External-IP", corev1.NodeStatus{}.SwaggerDoc()["addresses"], 1),
		col("OS-Image", corev1.NodeSystemInfo{}.SwaggerDoc()["osImage"], 1),
		col("Kernel-Version", corev1.NodeSystemInfo{}.SwaggerDoc()["kernelVersion"], 1),
		col("Container-Runtime", corev1.NodeSystemInfo{}.SwaggerDoc()["containerRuntimeVersion"], 1),
	},
	store.Leases: {
		col("Name", metav1.ObjectMeta{}.SwaggerDoc()["name"], 0),
		col("Holder", coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"], 0),
		col("Age", metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"], 0),
	},
}

// toTable prints objs as a Table; each row carries the object's metadata, which is what
// `--show-labels` and `-L` read.
func toTable(resource string, objs []store.Object, rv string, now time.Time) *metav1.Table {
	t := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ListMeta:          metav1.ListMeta{ResourceVersion: rv},
		ColumnDefinitions: columns[resource],
		Rows:              []metav1.TableRow{},
	}
	for _, obj := range objs {
		var row metav1.TableRow
		switch o := obj.(type) {
		case *corev1.Pod:
			row = podRow(o, now)
		case *corev1.Namespace:
			row = metav1.TableRow{Cells: []any{o.Name, string(o.Status.Phase), age(o.CreationTimestamp, now)}}
		case *corev1.Node:
			row = nodeRow(o, now)
		case *corev1.Event:
			row = eventRow(o, now)
		case *coordinationv1.Lease:
			holder := ""
			if o.Spec.HolderIdentity != nil {
				holder = *o.Spec.HolderIdentity
			}
			row = metav1.TableRow{Cells: []any{o.Name, holder, age(o.CreationTimestamp, now)}}
		}
		row.Object = runtime.RawExtension{Object: &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"},
			ObjectMeta: *obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta),
		}}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// podRow is kubectl's pod line: READY, STATUS (the reason a user most needs), RESTARTS with when.
func podRow(pod *corev1.Pod, now time.Time) metav1.TableRow {
	restarts, ready := 0, 0
	var lastRestart metav1.Time
	reason := string(pod.Status.Phase)
	if pod.Status.Reason != "" {
		reason = pod.Status.Reason
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	row := metav1.TableRow{}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(pod.Status.Phase), Message: "The pod has completed successfully."}}
	case corev1.PodFailed:
		row.Conditions = []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: string(pod.Status.Phase), Message: "The pod failed."}}
	}
	hasRunning := false
	for i := len(pod.Status.ContainerStatuses) - 1; i >= 0; i-- {
		c := pod.Status.ContainerStatuses[i]
		restarts += int(c.RestartCount)
		if t := c.LastTerminationState.Terminated; t != nil && lastRestart.Before(&t.FinishedAt) {
			lastRestart = t.FinishedAt
		}
		switch {
		case c.State.Waiting != nil && c.State.Waiting.Reason != "":
			reason = c.State.Waiting.Reason
		case c.State.Terminated != nil && c.State.Terminated.Reason != "":
			reason = c.State.Terminated.Reason
		case c.State.Terminated != nil && c.State.Terminated.Signal != 0:
			reason = fmt.Sprintf("Signal:%d", c.State.Terminated.Signal)
		case c.State.Terminated != nil:
			reason = fmt.Sprintf("ExitCode:%d", c.State.Terminated.ExitCode)
		case c.Ready && c.State.Running != nil:
			hasRunning = true
			ready++
		}
	}
	if reason == "Completed" && hasRunning {
		reason = "NotReady"
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				reason = "Running"
			}
		}
	}
	if pod.DeletionTimestamp != nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		reason = "Terminating"
	}
	restartsStr := strconv.Itoa(restarts)
	if restarts != 0 && !lastRestart.IsZero() {
		restartsStr = fmt.Sprintf("%d (%s ago)", restarts, age(lastRestart, now))
	}
	ip := "<none>"
	if len(pod.Status.PodIPs) > 0 {
		ip = pod.Status.PodIPs[0].IP
	}
	node, nominated := orNone(pod.Spec.NodeName), orNone(pod.Status.NominatedNodeName)
	gates := "<none>"
	if n := len(pod.Spec.ReadinessGates); n > 0 {
		trueGates := 0
		for _, g := range pod.Spec.ReadinessGates {
			for _, c := range pod.Status.Conditions {
				if c.Type == g.ConditionType && c.Status == corev1.ConditionTrue {
					trueGates++
				}
			}
		}
		gates = fmt.Sprintf("%d/%d", trueGates, n)
	}
	row.Cells = []any{pod.Name, fmt.Sprintf("%d/%d", ready, len(pod.Spec.Containers)), reason, restartsStr,
		age(pod.CreationTimestamp, now), ip, node, nominated, gates}
	return row
}

func nodeRow(n *corev1.Node, now time.Time) metav1.TableRow {
	var conds []string
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			if c.Status == corev1.ConditionTrue {
				conds = append(conds, "Ready")
			} else {
				conds = append(conds, "NotReady")
			}
		}
	}
	if len(conds) == 0 {
		conds = append(conds, "Unknown")
	}
	if n.Spec.Unschedulable {
		conds = append(conds, "SchedulingDisabled")
	}
	var roles []string
	for k, v := range n.Labels {
		switch {
		case strings.HasPrefix(k, "node-role.kubernetes.io/"):
			if r := strings.TrimPrefix(k, "node-role.kubernetes.io/"); r != "" {
				roles = append(roles, r)
			}
		case k == "kubernetes.io/role" && v != "":
			roles = append(roles, v)
		}
	}
	sort.Strings(roles)
	role := "<none>"
	if len(roles) > 0 {
		role = strings.Join(roles, ",")
	}
	internal, external := "<none>", "<none>"
	for _, a := range n.Status.Addresses {
		switch {
		case a.Type == corev1.NodeInternalIP && internal == "<none>":
			internal = a.Address
		case a.Type == corev1.NodeExternalIP && external == "<none>":
			external = a.Address
		}
	}
	info := n.Status.NodeInfo
	return metav1.TableRow{Cells: []any{n.Name, strings.Join(conds, ","), role, age(n.CreationTimestamp, now),
		info.KubeletVersion, internal, external, orUnknown(info.OSImage), orUnknown(info.KernelVersion),
		orUnknown(info.ContainerRuntimeVersion)}}
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func eventRow(e *corev1.Event, now time.Time) metav1.TableRow {
	obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
	src := e.Source.Component
	if e.Source.Host != "" {
		src += ", " + e.Source.Host
	}
	return metav1.TableRow{Cells: []any{age(e.LastTimestamp, now), e.Type, e.Reason, obj, strings.TrimSpace(e.Message),
		src, e.InvolvedObject.FieldPath, age(e.FirstTimestamp, now), int64(e.Count), e.Name}}
}
