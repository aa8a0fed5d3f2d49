/* SPDX-License-Identifier: GPL-2.0 */
/*
 * User-guided page merging (MADV_UPM), private to mm/.
 *
 * madvise(MADV_UPM) merges the present anonymous pages of a range at once
 * with identical pages advised before: mm/ksm.c does the merging with KSM's
 * own machinery under ksm_thread_mutex, mm/upm.c keeps the two content
 * indexes that find an identical page in O(1), of KSM pages and of
 * candidates (advised pages that had no twin yet and stay private), and the
 * statistics.
 */
#ifndef _MM_UPM_H
#define _MM_UPM_H

#include <linux/rhashtable-types.h>
#include <linux/types.h>

struct mm_struct;
struct page;

/**
 * struct upm_key - what the content index is keyed by
 * @hash: 64-bit hash of the page's content and merge domain; equal keys
 *        only suggest a twin, the pages are compared byte by byte before
 *        they are merged. Identical pages of two domains never have equal
 *        keys (see upm_page_key()).
 */
struct upm_key {
	u64 hash;
};

/**
 * struct upm_index_entry - a KSM page's place in the content index
 * @node: link in the index; pages with equal keys share a list
 * @key: the key of the page's content, once @keyed
 * @keyed: whether @key was computed, so that the page can be filed again
 * @indexed: whether @node is linked into the index
 *
 * A KSM page is in the index while it can take more sharers: it leaves when
 * it is full or has none, and comes back when it can take sharers again.
 */
struct upm_index_entry {
	struct rhlist_head node;
	struct upm_key key;
	bool keyed;
	bool indexed;
};

/**
 * struct upm_candidate - an advised page's place in the candidate index
 * @node: link in the index; candidates with equal keys share a list
 * @key: the key of the page's content when it was advised
 *
 * Embedded in the page's rmap_item while the page waits, private and
 * writable, for an identical page to be advised: then both merge into one
 * KSM page. Its content may have changed since; it is compared first.
 */
struct upm_candidate {
	struct rhlist_head node;
	struct upm_key key;
};

/**
 * struct upm_counts - what one MADV_UPM call did with the pages it found
 * @scanned: present anonymous pages looked at
 * @merged: pages that now share a page with an identical page advised
 *          before: a KSM page, a candidate, or the zero page
 * @candidate: pages with no twin yet, left private and recorded
 * @new_ksm: KSM pages made, each of a candidate and a page merged with it
 * @already_merged: pages that were KSM pages mapped here already
 * @skipped: pages that could not be merged now (pinned, locked, changing)
 * @zero: zero-filled pages among @scanned
 * @candidates_busy: not a counter: candidates of a KSM page met here could
 *                   not be merged into it now, so the call tries again
 *
 * Every page scanned is counted once in @merged, @candidate,
 * @already_merged or @skipped.
 */
struct upm_counts {
	unsigned long scanned;
	unsigned long merged;
	unsigned long candidate;
	unsigned long new_ksm;
	unsigned long already_merged;
	unsigned long skipped;
	unsigned long zero;
	bool candidates_busy;
};

#ifdef CONFIG_UPM
/* Index entries tried per lookup and kept per key: more are collisions. */
#define UPM_MAX_CANDIDATES	4

int upm_merge_allowed(void);
int upm_merge_range(struct mm_struct *mm, unsigned long start,
		    unsigned long end);

void upm_page_key(struct page *page, u64 domain, struct upm_key *key);
u64 upm_refresh_domain(struct mm_struct *mm);
int upm_emit_domain(char *buf, int at, u64 domain, unsigned long shared,
		    unsigned long sharing);
bool upm_key_is_zero(const struct upm_key *key, u64 domain,
		     struct page *page);
bool upm_pages_identical(struct page *page1, struct page *page2);
void upm_index_init_entry(struct upm_index_entry *entry);
void upm_index_set_key(struct upm_index_entry *entry,
		       const struct upm_key *key);
void upm_index_add(struct upm_index_entry *entry);
void upm_index_del(struct upm_index_entry *entry);
int upm_index_lookup(const struct upm_key *key,
		     struct upm_index_entry **found, int max);
bool upm_candidate_add(struct upm_candidate *cand, const struct upm_key *key);
void upm_candidate_del(struct upm_candidate *cand);
int upm_candidate_lookup(const struct upm_key *key,
			 struct upm_candidate **found, int max);

/**
 * upm_target_exited - tell whether a process_madvise() target has exited
 * @mm: the address space being merged
 *
 * The last task to leave an mm (by exit or exec) clears its owner, however
 * many references others (the caller, /proc readers) still hold.
 *
 * Return: true if @mm is another process's and no task uses it any more:
 * only references keep it until the call ends.
 */
static inline bool upm_target_exited(struct mm_struct *mm)
{
	return mm != current->mm && !rcu_access_pointer(mm->owner);
}

/* In mm/ksm.c */
int ksm_upm_merge(struct mm_struct *mm, unsigned long start,
		  unsigned long end, struct upm_counts *counts);
bool ksm_upm_unmerging(void);
int ksm_upm_set_domain(struct mm_struct *mm, u64 domain);
ssize_t ksm_upm_domains_show(char *buf);
#else
static inline int upm_merge_allowed(void)
{
	return -EINVAL;
}

static inline int upm_merge_range(struct mm_struct *mm, unsigned long start,
				  unsigned long end)
{
	return -EINVAL;
}

static inline void upm_candidate_del(struct upm_candidate *cand)
{
}

static inline u64 upm_refresh_domain(struct mm_struct *mm)
{
	return 0;
}
#endif

#endif /* _MM_UPM_H */
