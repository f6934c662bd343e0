# GeoDNS: one hostname, answered per client location with the nearest
# region's load balancer IP (Cloud DNS geolocation routing policy, public
# zone). A geo item per region in var.lb_ips; a client whose location matches
# no item gets the nearest one.
#
# Health-checked failover (var.dns_health_check, on by default): Cloud DNS
# probes every region's IP over HTTPS at var.health_check_path from three
# source regions and answers only with healthy regions. With geo-fencing off
# (below), when a region fails its clients are sent to the next nearest
# healthy region. Failover takes one or two probe intervals (30s minimum
# here) plus the record TTL plus whatever resolvers and clients cache; a
# client already connected to a failed region sees its WebSocket drop and
# reconnects through DNS.
#
# What the probe sees: the load balancer routes /readyz to an edge of the
# region that is not draining (its own per-pod check is /readyz?scope=local),
# and that edge answers 503 while it cannot publish to or receive from
# Pub/Sub. So a region whose backbone is broken is left out of the answers,
# and its clients go to the next region. When every region fails (a global
# Pub/Sub blip), Cloud DNS routing policies fail open and answer with all of
# them, so nobody is sent nowhere (see docs/operations.md).

locals {
  dns_enabled = var.manage_dns
  hc_enabled  = var.manage_dns && var.dns_health_check
}

resource "google_compute_health_check" "edge_dns" {
  count = local.hc_enabled ? 1 : 0

  name        = "${var.topic_prefix}-edge-dns"
  description = "Cloud DNS health check of the feedgate edge load balancers (GeoDNS failover)."

  # Health checks with source regions (the kind Cloud DNS uses for public
  # IPs): global, exactly three regions, at least 30s between probes.
  source_regions      = var.health_check_source_regions
  check_interval_sec  = 30
  timeout_sec         = 10
  healthy_threshold   = 2
  unhealthy_threshold = 2

  https_health_check {
    port               = 443
    port_specification = "USE_FIXED_PORT"
    request_path       = var.health_check_path
    host               = var.dns_name == null ? null : trimsuffix(var.dns_name, ".")
  }
}

resource "google_dns_record_set" "edge" {
  count = local.dns_enabled ? 1 : 0

  managed_zone = var.dns_managed_zone
  name         = var.dns_name
  type         = "A"
  ttl          = var.dns_ttl

  routing_policy {
    # Off: when every edge of a region is unhealthy, its clients are answered
    # with the next nearest healthy region instead of the failed one.
    enable_geo_fencing = false
    health_check       = local.hc_enabled ? google_compute_health_check.edge_dns[0].self_link : null

    dynamic "geo" {
      for_each = var.lb_ips
      content {
        location = geo.key
        # Health-checked: the IP is a health-checked external endpoint.
        # Not health-checked: a plain answer.
        rrdatas = local.hc_enabled ? null : [geo.value]

        dynamic "health_checked_targets" {
          for_each = local.hc_enabled ? [geo.value] : []
          content {
            external_endpoints = [health_checked_targets.value]
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.dns_managed_zone != null && var.dns_name != null && length(var.lb_ips) > 0
      error_message = "manage_dns needs dns_managed_zone, dns_name and at least one entry in lb_ips."
    }
  }
}
