"""HTTP routers, one per concern: web page, /predict, health + metrics, Open Inference Protocol (V2)."""
