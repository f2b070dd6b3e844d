/* Cluster routes: HTTP <-> sv_cluster_* calls. */
#include "cluster.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->cluster

SV_ROUTE(sv_route_nodes_list, 200, sv_cluster_nodes(SVC, &out, &err))
