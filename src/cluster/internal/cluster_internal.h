/* cluster module internals shared by cluster.c and forward.c. */
#ifndef SV_CLUSTER_INTERNAL_H
#define SV_CLUSTER_INTERNAL_H

#include "cluster.h"

/* The advertised URL of a node whose lease is alive, as this node's watch
 * on nodes/ last saw it: 0, or SV_ENOTFOUND (not HEALTHY). */
int cluster_node_url(sv_cluster *c, const char *node, char *url, size_t n);
/* The node-to-node secret ("" when none is configured). */
const char *cluster_secret(const sv_cluster *c);
/* forward.c's connection cache: set up with the cluster, freed at close. */
int cluster_forward_init(sv_cluster *c, sv_err *err);
void cluster_forward_free(sv_cluster *c);
/* Its per-cluster state (opaque to cluster.c). */
struct forward_state;
struct forward_state **cluster_forward_state(sv_cluster *c);

#endif
