// SHA-256 digests (OpenSSL's libcrypto) for what a checkpoint records of its inputs: the encoder's
// weights, the template file, the dataset's contents and the model's identity.
#pragma once
#include <string>

namespace sbtrec {

// Lower-case hex SHA-256 of `bytes`.
std::string sha256_hex(const std::string& bytes);
// Lower-case hex SHA-256 of the file's contents, read in blocks; IoError naming the file if unreadable.
std::string sha256_file(const std::string& path);

}  // namespace sbtrec
