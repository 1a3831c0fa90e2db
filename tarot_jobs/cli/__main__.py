from tarot_jobs.cli import main

main()
