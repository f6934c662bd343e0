# ---------------------------------------------------------------- Pub/Sub

variable "project_id" {
  description = "Project that holds the shard topics, the edges' subscriptions and the edge service account. A project of its own is best: the edge may create and delete any subscription in it (iam.tf)."
  type        = string
}

variable "topic_prefix" {
  description = "Shard topics are <topic_prefix>-<k>; must equal EDGE_PUBSUB_PREFIX on every edge. Edge subscriptions are <topic_prefix>-<k>-<EDGE_ID>, so it must start with a letter."
  type        = string
  default     = "feedgate"

  validation {
    condition     = can(regex("^[A-Za-z][A-Za-z0-9-]{0,100}$", var.topic_prefix)) && !startswith(lower(var.topic_prefix), "goog")
    error_message = "topic_prefix: a letter, then letters, digits or '-'; not starting with \"goog\"."
  }
}

variable "shards" {
  description = "Number of shard topics; must equal EDGE_PUBSUB_SHARDS on every edge. Changing it remaps channels to shards: do it only with every edge stopped."
  type        = number
  default     = 8

  validation {
    condition     = var.shards >= 1 && var.shards <= 256 && floor(var.shards) == var.shards
    error_message = "shards must be a whole number from 1 to 256."
  }
}

variable "message_retention_duration" {
  description = "Topic message retention (10 minutes to 31 days), billed as storage. A starting edge replays the last EDGE_WARM_HISTORY (default 1m) of the topics into its history, so that the clients of a restarted edge resume; the retention must cover it (docs/operations.md, Warming history at start). null: no retention, and new edges start with empty history."
  type        = string
  default     = "600s"
}

variable "labels" {
  description = "Labels for the topics."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- identity

variable "service_account_id" {
  description = "Account ID of the Google service account the edges run as (Workload Identity)."
  type        = string
  default     = "feedgate-edge"
}

variable "subscription_role_id" {
  description = "ID of the project-level custom role that lets the edges create, consume and delete their own subscriptions."
  type        = string
  default     = "feedgateEdgeSubscriptions"
}

variable "gke_project_id" {
  description = "Project of the GKE clusters (its Workload Identity pool is <gke_project_id>.svc.id.goog). null: same as project_id."
  type        = string
  default     = null
}

variable "k8s_namespace" {
  description = "Namespace of the edge Deployment (deploy/k8s)."
  type        = string
  default     = "feedgate"
}

variable "k8s_service_account" {
  description = "Kubernetes service account of the edge pods (deploy/k8s/base/serviceaccount.yaml)."
  type        = string
  default     = "feedgate-edge"
}

# ---------------------------------------------------------------- GeoDNS

variable "manage_dns" {
  description = "Create the GeoDNS record (and its health check)."
  type        = bool
  default     = true
}

variable "dns_managed_zone" {
  description = "Name (not DNS name) of the existing public Cloud DNS managed zone that holds dns_name."
  type        = string
  default     = null
}

variable "dns_name" {
  description = "Hostname clients connect to, fully qualified with the trailing dot, e.g. \"edge.example.com.\"."
  type        = string
  default     = null

  validation {
    condition     = var.dns_name == null || endswith(coalesce(var.dns_name, "."), ".")
    error_message = "dns_name must end with a dot."
  }
}

variable "dns_ttl" {
  description = "TTL of the record, in seconds. Short, so that failover and region changes reach clients quickly (resolvers may still hold answers longer)."
  type        = number
  default     = 30
}

variable "lb_ips" {
  description = "Per-region load balancer IPv4 address, keyed by Google Cloud region (the geo location of the record item), e.g. { \"europe-west1\" = \"203.0.113.10\" }. Each is the static address of that region's Gateway (deploy/k8s/overlays/<region>)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for ip in values(var.lb_ips) : can(cidrhost("${ip}/32", 0))])
    error_message = "lb_ips values must be IPv4 addresses."
  }
}

variable "dns_health_check" {
  description = "Health-check each region's load balancer from Cloud DNS and leave unhealthy regions out of answers (clients then get the next nearest healthy region). Off: plain geo routing, no failover."
  type        = bool
  default     = true
}

variable "health_check_path" {
  description = "Path the DNS health check requests over HTTPS on each load balancer IP. /readyz answers 200 while the edge it reaches is serving; through the load balancer that means: some edge of the region is ready."
  type        = string
  default     = "/readyz"
}

variable "health_check_source_regions" {
  description = "Exactly three Google Cloud regions the DNS health checks are sent from."
  type        = list(string)
  default     = ["us-east4", "europe-west1", "asia-southeast1"]

  validation {
    condition     = length(var.health_check_source_regions) == 3
    error_message = "Cloud DNS health checks need exactly three source regions."
  }
}
