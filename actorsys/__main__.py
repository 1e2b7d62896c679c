from actorsys.cli import main

main()
