# Sourced by scripts/quality_run.sh and scripts/behaviour_signal.sh: the SmolLM2 config of a variant name
# (sbtrec = the shipped config, continuous = w/o HDSD, any other = ablations/sbtrec_smollm_<name>.yaml), and
# the encoder rows its item codebooks are fitted on (input = the paper's item-embedding rows for the
# paper's variant, output = the scoring rows for the others).
variant_config() {
  case $1 in
    sbtrec) echo configs/movielens/sbtrec_smollm.yaml ;;
    continuous) echo configs/movielens/ablations/sbtrec_smollm_wo_hdsd.yaml ;;
    *) echo "configs/movielens/ablations/sbtrec_smollm_$1.yaml" ;;
  esac
}
variant_item_rows() { if [ "$1" = paper ]; then echo input; else echo output; fi; }
