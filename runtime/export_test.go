package runtime

// UseShimPerContainer makes r create pods as agents before shim groups did: one shim per task.
func UseShimPerContainer(r *Runtime, on bool) { r.shimPerContainer = on }
