/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The topology's stable JSON form, for tools, golden files and fuzzers; the
 * daemon's protocols describe devices their own way.
 */

#include <json-c/json.h>

#include "topology.h"

/* Stable JSON: {"groups":[...],"devices":[...],"iommus":[...],"problems":[...]}. */
int topology_to_json(const Topology *t, json_object **ret);
int topo_device_to_json(const TopoDevice *d, json_object **ret);
