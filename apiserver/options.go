package apiserver

import (
	"fmt"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metainternalscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metainternalvalidation "k8s.io/apimachinery/pkg/apis/meta/internalversion/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The query parameters of each verb are read and checked as the kube-apiserver's handlers do: a
// value that does not parse (limit=abc) is 400 BadRequest, one that parses but is not allowed
// (dryRun=Maybe, fieldValidation=Loose) is 422 Invalid naming the parameter. Nothing is ignored:
// a dryRun=Maybe taken as "not a dry run" would write what the client meant to try.

// decodeQuery reads r's query into opts, one of the meta/v1 option types.
func decodeQuery(r *http.Request, opts runtime.Object) error {
	if err := metainternalscheme.ParameterCodec.DecodeParameters(r.URL.Query(), metav1.SchemeGroupVersion, opts); err != nil {
		return apierrors.NewBadRequest(err.Error())
	}
	return nil
}

// invalidOptions is the apiserver's 422 for options that parsed but are not allowed.
func invalidOptions(kind string, errs field.ErrorList) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: kind}, "", errs)
}

func createOptions(r *http.Request) (*metav1.CreateOptions, error) {
	opts := &metav1.CreateOptions{}
	if err := decodeQuery(r, opts); err != nil {
		return nil, err
	}
	if errs := metav1validation.ValidateCreateOptions(opts); len(errs) > 0 {
		return nil, invalidOptions("CreateOptions", errs)
	}
	return opts, nil
}

func updateOptions(r *http.Request) (*metav1.UpdateOptions, error) {
	opts := &metav1.UpdateOptions{}
	if err := decodeQuery(r, opts); err != nil {
		return nil, err
	}
	if errs := metav1validation.ValidateUpdateOptions(opts); len(errs) > 0 {
		return nil, invalidOptions("UpdateOptions", errs)
	}
	return opts, nil
}

func patchOptions(r *http.Request, patchType types.PatchType) (*metav1.PatchOptions, error) {
	opts := &metav1.PatchOptions{}
	if err := decodeQuery(r, opts); err != nil {
		return nil, err
	}
	if errs := metav1validation.ValidatePatchOptions(opts, patchType); len(errs) > 0 {
		return nil, invalidOptions("PatchOptions", errs)
	}
	return opts, nil
}

// listOptions reads a list's or watch's query. resourceVersion must be a resourceVersion this
// store could have written (a number), as etcd's versioner requires.
func listOptions(r *http.Request) (*internalversion.ListOptions, error) {
	opts := &internalversion.ListOptions{}
	if err := decodeQuery(r, opts); err != nil {
		return nil, err
	}
	if errs := metainternalvalidation.ValidateListOptions(opts, true); len(errs) > 0 {
		return nil, invalidOptions("ListOptions", errs)
	}
	if rv := opts.ResourceVersion; rv != "" {
		if _, err := strconv.ParseUint(rv, 10, 64); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid resource version: %v",
				field.Invalid(field.NewPath("resourceVersion"), rv, err.Error())))
		}
	}
	return opts, nil
}

// isDryRun reports whether the options ask for a dry run; they are validated, so any value is All.
func isDryRun(dryRun []string) bool { return len(dryRun) > 0 }
