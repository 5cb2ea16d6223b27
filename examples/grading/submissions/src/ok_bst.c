// callgate-build: command
/* ok_bst: inserts into a binary search tree, prints it in order. */
#include <stdio.h>
#include <stdlib.h>

struct node { long long key; size_t count; struct node *left, *right; };

static struct node *insert(struct node *root, long long key) {
    struct node **at = &root;
    while (*at) {
        if (key == (*at)->key) {
            (*at)->count++;
            return root;
        }
        at = key < (*at)->key ? &(*at)->left : &(*at)->right;
    }
    *at = calloc(1, sizeof **at);
    (*at)->key = key;
    (*at)->count = 1;
    return root;
}

static void walk(const struct node *t) {
    if (!t)
        return;
    walk(t->left);
    for (size_t i = 0; i < t->count; i++)
        printf(" %lld", t->key);
    walk(t->right);
}

int main(void) {
    struct node *root = NULL;
    long long x, sum = 0;
    size_t n = 0;
    while (scanf("%lld", &x) == 1) {
        root = insert(root, x);
        sum += x;
        n++;
    }
    printf("count %zu\nsum %lld\nsorted", n, sum);
    walk(root);
    printf("\n");
    return 0;
}
