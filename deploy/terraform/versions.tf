terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source = "hashicorp/google"
      # routing_policy.health_check and health_checked_targets.external_endpoints
      # (health-checked routing for public zones) need a provider from 2025 on.
      version = ">= 6.20, < 8.0"
    }
  }

  # Keep state remote and shared, e.g.:
  # backend "gcs" {
  #   bucket = "my-terraform-state"
  #   prefix = "feedgate"
  # }
}

provider "google" {
  project = var.project_id
}
