"""wheelfarm's build side: recipes, planning, building, repairing, checking and publishing wheels."""
