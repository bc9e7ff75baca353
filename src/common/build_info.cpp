// The running build (see build_info.h).
#include "sbtrec/common/build_info.h"

#include <dlfcn.h>
#include <torch/version.h>

#include <fstream>
#include <set>
#include <sstream>

#include "sbtrec/common/digest.h"

namespace sbtrec {

const nlohmann::json& build_info() {
  static const nlohmann::json info = [] {
    nlohmann::json j;
    Dl_info dl{};
    std::string lib;
    if (dladdr(reinterpret_cast<const void*>(&build_info), &dl) && dl.dli_fname) lib = dl.dli_fname;
    j["library"] = lib;
    try {
      j["library_sha256"] = lib.empty() ? std::string() : sha256_file(lib).substr(0, 12);
    } catch (const std::exception&) {
      j["library_sha256"] = "";  // unreadable (deleted after loading): said as unknown, not guessed
    }
    j["torch"] = TORCH_VERSION;
    std::set<std::string> flags;
    std::ifstream cpu("/proc/cpuinfo");
    for (std::string line; std::getline(cpu, line);) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream words(line.substr(line.find(':') + 1));
      for (std::string w; words >> w;)
        if (w.rfind("avx", 0) == 0 || w.rfind("amx", 0) == 0) flags.insert(w);
      break;
    }
    j["cpu_flags"] = std::vector<std::string>(flags.begin(), flags.end());
    return j;
  }();
  return info;
}

}  // namespace sbtrec
