from blastseg.cli import main

main()
